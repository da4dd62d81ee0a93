"""Export a metalight training checkpoint to one Hugging Face ``save_pretrained`` directory.

Accepts the three checkpoint layouts a run can leave behind (read by :mod:`metalight.models.checkpoints`): a
Lightning ``.ckpt`` file, an FSDP sharded directory, or a DeepSpeed ZeRO directory.
The base architecture and tokenizer come from the model spec stored in the checkpoint's hyperparameters (or
``--base``); the module's ``model.`` prefix is stripped and the weights are loaded strictly. A LoRA run's
checkpoint (adapter weights only, as SFT saves them, or with the base) is exported with the adapter merged in.

    python scripts/export_hf.py runs/esma/version_0/checkpoints/last.ckpt --out exported/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from metalight.errors import ConfigError, MissingPackageError
from metalight.models.checkpoints import model_weights, read_checkpoint
from metalight.models.loading import load_model
from metalight.models.lora import LoraSettings, apply_lora


def load_weights(model, weights: dict[str, torch.Tensor], lora: dict | None, checkpoint: Path):
    """``model`` holding the checkpoint's weights. A LoRA run's (its ``lora`` hyperparameters set) are adapter
    weights, alone (SFT keeps only those) or with the base weights: the adapter is applied, loaded and
    merged."""
    if not lora:
        model.load_state_dict(weights, strict=True)
        return model
    model = apply_lora(model, LoraSettings(**lora))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    adapter_missing = [k for k in missing if "lora_" in k]
    if unexpected or adapter_missing:
        raise ConfigError(
            f"{checkpoint}: its weights do not fit LoRA {lora} on the base model "
            f"({len(adapter_missing)} adapter weights missing, {len(unexpected)} unexpected); pass "
            f"--base <the model the run trained>"
        )
    return model.merge_and_unload()


def export(checkpoint: Path, out: Path, base: str | None = None, dtype: str = "float32") -> Path:
    """Write ``out`` (config, safetensors weights, tokenizer) from ``checkpoint``; returns ``out``."""
    state, hparams = read_checkpoint(checkpoint)
    spec = base or hparams.get("model")
    if not spec:
        raise ConfigError(f"{checkpoint} records no model spec in its hyperparameters; pass --base <spec>")
    model, tokenizer = load_model(spec, dtype)
    model = load_weights(model, model_weights(state, checkpoint), hparams.get("lora"), checkpoint)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path, help=".ckpt file or sharded checkpoint directory")
    parser.add_argument(
        "--out", type=Path, required=True, help="output directory (HF save_pretrained layout)"
    )
    parser.add_argument("--base", help="model spec of the architecture (default: the one the run used)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    args = parser.parse_args()
    try:
        print(f"exported to {export(args.checkpoint, args.out, args.base, args.dtype)}")
    except (ConfigError, MissingPackageError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
