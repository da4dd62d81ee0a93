"""Export a metalight training checkpoint to one Hugging Face ``save_pretrained`` directory.

Accepts the three checkpoint layouts a run can leave behind:
  * a Lightning ``.ckpt`` file (single device, DDP, or FSDP with ``state_dict_type: full``);
  * an FSDP *sharded* checkpoint directory (torch.distributed.checkpoint: has a ``.metadata`` file) — the
    shards are gathered into one state dict on this machine;
  * a DeepSpeed ZeRO checkpoint directory — converted first with Lightning's
    ``convert_zero_checkpoint_to_fp32_state_dict`` (needs ``pip install '.[deepspeed]'``).
The base architecture and tokenizer come from the model spec stored in the checkpoint's hyperparameters (or
``--base``); the module's ``model.`` prefix is stripped and the weights are loaded strictly. A LoRA run's
checkpoint (adapter weights only, as SFT saves them, or with the base) is exported with the adapter merged in.

    python scripts/export_hf.py runs/esma/version_0/checkpoints/last.ckpt --out exported/
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from metalight.errors import ConfigError, MissingPackageError
from metalight.models.loading import load_model
from metalight.models.lora import LoraSettings, apply_lora

MODULE_PREFIX = "model."


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, hyperparameters)`` from a .ckpt file, an FSDP sharded dir or a DeepSpeed dir."""
    if path.is_file():
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        return checkpoint["state_dict"], checkpoint.get("hyper_parameters", {})
    if not path.is_dir():
        raise ConfigError(f"checkpoint {path} not found; give a .ckpt file or a sharded checkpoint directory")
    with tempfile.TemporaryDirectory() as tmp:
        single = Path(tmp) / "full.pt"
        if (path / ".metadata").is_file():  # FSDP sharded (torch.distributed.checkpoint)
            from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

            dcp_to_torch_save(path, single)
            checkpoint = torch.load(single, map_location="cpu", weights_only=False)
            meta = path / "meta.pt"
            hparams = torch.load(meta, map_location="cpu", weights_only=False).get("hyper_parameters", {}) \
                if meta.is_file() else {}
            return checkpoint["model"], hparams
        if (path / "checkpoint").is_dir() or (path / "latest").is_file():  # DeepSpeed ZeRO
            try:
                from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict
            except ImportError as err:  # pragma: no cover - depends on the optional extra
                raise MissingPackageError("DeepSpeed checkpoints need: DS_BUILD_OPS=0 pip install "
                                          "'.[deepspeed]' torch==2.13.0") from err
            convert_zero_checkpoint_to_fp32_state_dict(str(path), str(single))
            checkpoint = torch.load(single, map_location="cpu", weights_only=False)
            return checkpoint["state_dict"], checkpoint.get("hyper_parameters", {})
    raise ConfigError(f"{path} is a directory but neither an FSDP sharded checkpoint (.metadata) nor a DeepSpeed "
                      f"one (checkpoint/ or latest)")


def load_weights(model, weights: dict[str, torch.Tensor], lora: dict | None, checkpoint: Path):
    """``model`` holding the checkpoint's weights. A LoRA run's (its ``lora`` hyperparameters set) are adapter
    weights, alone (SFT keeps only those) or with the base weights: the adapter is applied, loaded and merged."""
    if not lora:
        model.load_state_dict(weights, strict=True)
        return model
    model = apply_lora(model, LoraSettings(**lora))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    adapter_missing = [k for k in missing if "lora_" in k]
    if unexpected or adapter_missing:
        raise ConfigError(f"{checkpoint}: its weights do not fit LoRA {lora} on the base model "
                          f"({len(adapter_missing)} adapter weights missing, {len(unexpected)} unexpected); pass "
                          f"--base <the model the run trained>")
    return model.merge_and_unload()


def export(checkpoint: Path, out: Path, base: str | None = None, dtype: str = "float32") -> Path:
    """Write ``out`` (config, safetensors weights, tokenizer) from ``checkpoint``; returns ``out``."""
    state, hparams = read_checkpoint(checkpoint)
    spec = base or hparams.get("model")
    if not spec:
        raise ConfigError(f"{checkpoint} records no model spec in its hyperparameters; pass --base <spec>")
    model, tokenizer = load_model(spec, dtype)
    weights = {k[len(MODULE_PREFIX):]: v for k, v in state.items() if k.startswith(MODULE_PREFIX)}
    if not weights:
        raise ConfigError(f"{checkpoint}: no '{MODULE_PREFIX}*' weights in the state dict (not a metalight run?)")
    model = load_weights(model, weights, hparams.get("lora"), checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help=".ckpt file or sharded checkpoint directory")
    parser.add_argument("--out", type=Path, required=True, help="output directory (HF save_pretrained layout)")
    parser.add_argument("--base", help="model spec of the architecture (default: the one the run used)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    try:
        print(f"exported to {export(args.checkpoint, args.out, args.base, args.dtype)}")
    except (ConfigError, MissingPackageError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
