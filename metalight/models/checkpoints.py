"""Reading what a training run saved: its state dict and hyperparameters, and the model weights in it.

A run leaves one of three checkpoint layouts behind:
  * a Lightning ``.ckpt`` file (single device, DDP, or FSDP with ``state_dict_type: full``);
  * an FSDP *sharded* checkpoint directory (torch.distributed.checkpoint: has a ``.metadata`` file) — the
    shards are gathered into one state dict on this machine;
  * a DeepSpeed ZeRO checkpoint directory — converted first with Lightning's
    ``convert_zero_checkpoint_to_fp32_state_dict`` (needs ``pip install '.[deepspeed]'``).
The module holds the language model as ``model``, so its weights are the ``model.*`` entries. A ``.ckpt`` file
is a zip archive: :func:`verify_archive` checks its CRCs before anything is loaded (flipped bytes inside a
tensor pass ``zipfile.is_zipfile`` and would load), and :func:`checkpoint_header` reads its class, step and
epoch cheaply.
"""

from __future__ import annotations

import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from metalight.errors import ConfigError, MissingPackageError

MODULE_PREFIX = "model."


def verify_archive(path: Path) -> None:
    """Refuse a ``.ckpt`` file that is not a readable zip archive or whose parts do not match their CRCs
    (``ConfigError`` naming the file and the damaged part)."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error):
        raise ConfigError(
            f"checkpoint {path} is not a readable PyTorch checkpoint (corrupt or truncated); use "
            f"another one, e.g. an earlier file in {path.parent}"
        ) from None
    if damaged is not None:
        raise ConfigError(
            f"checkpoint {path} is damaged: its part {damaged} does not match its checksum (CRC); "
            f"use another one, e.g. an earlier file in {path.parent}"
        )


def checkpoint_header(path: str | Path) -> dict[str, Any]:
    """``{"class_path", "global_step", "epoch"}`` of a ``.ckpt`` file (tensors memory-mapped, not read);
    empty when the file cannot be read that way (a sharded directory, an old format)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return {}
    hparams = checkpoint.get("hyper_parameters") or {}
    return {
        "class_path": hparams.get("_class_path"),
        "global_step": checkpoint.get("global_step"),
        "epoch": checkpoint.get("epoch"),
    }


def read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """``(state_dict, hyperparameters)`` of a training checkpoint (see the module docstring for the
    layouts)."""
    if path.is_file():
        verify_archive(path)
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            raise ConfigError(
                f"{path}: not a Lightning checkpoint (no state_dict); pass a model directory instead"
            )
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
            hparams = (
                torch.load(meta, map_location="cpu", weights_only=False).get("hyper_parameters", {})
                if meta.is_file()
                else {}
            )
            return checkpoint["model"], hparams
        if (path / "checkpoint").is_dir() or (path / "latest").is_file():  # DeepSpeed ZeRO
            try:
                from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict
            except ImportError as err:  # pragma: no cover - depends on the optional extra
                raise MissingPackageError(
                    "DeepSpeed checkpoints need: DS_BUILD_OPS=0 pip install '.[deepspeed]' torch==2.13.0"
                ) from err
            convert_zero_checkpoint_to_fp32_state_dict(str(path), str(single))
            checkpoint = torch.load(single, map_location="cpu", weights_only=False)
            return checkpoint["state_dict"], checkpoint.get("hyper_parameters", {})
    raise ConfigError(
        f"{path} is a directory but neither an FSDP sharded checkpoint (.metadata) nor a DeepSpeed "
        f"one (checkpoint/ or latest)"
    )


def model_weights(state: dict[str, torch.Tensor], source: str | Path) -> dict[str, torch.Tensor]:
    """The language model's weights of a module state dict (the ``model.`` prefix removed); ``ConfigError``
    naming ``source`` when there are none."""
    weights = {k[len(MODULE_PREFIX) :]: v for k, v in state.items() if k.startswith(MODULE_PREFIX)}
    if not weights:
        raise ConfigError(f"{source}: no '{MODULE_PREFIX}*' weights in the state dict (not a metalight run?)")
    return weights


def load_checkpoint_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the model weights of a training checkpoint (any layout above, e.g. an ESMA ``last.ckpt``) into
    ``model`` (a tied LM head may be missing from the checkpoint)."""
    state, _ = read_checkpoint(Path(path))
    missing, unexpected = model.load_state_dict(model_weights(state, path), strict=False)
    if unexpected or [m for m in missing if not m.endswith("lm_head.weight")]:
        raise ConfigError(
            f"{path}: checkpoint weights do not fit the base model (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); extract against the model the run started from"
        )
    return model
