"""LoRA through peft, and exporting a trained model as a ``save_pretrained`` directory.

Export modes: ``full`` (the whole model; with LoRA, the adapter merged in), ``adapter`` (the LoRA adapter
only, loadable with ``peft.PeftModel.from_pretrained(base, path)``), ``merged`` (``merge_and_unload`` of a
copy, so the module keeps training its adapter). Directories are written under a temporary name and renamed.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from metalight.errors import ConfigError

ExportMode = Literal["full", "adapter", "merged"]


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter on the chosen linear layers (peft ``LoraConfig``).

    Args:
        r: rank of the update.
        alpha: scaling numerator (the update is scaled by alpha / r).
        dropout: dropout on the adapter's input during training.
        target_modules: module names to adapt, or ``["all-linear"]``; Know-thyself's legacy pipeline adapts
            the attention projections.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


def apply_lora(model, settings: LoraSettings):
    """Wrap ``model`` in a peft ``PeftModel`` whose only trainable parameters are the adapter's."""
    from peft import LoraConfig, get_peft_model

    targets = settings.target_modules
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules="all-linear" if list(targets) == ["all-linear"] else list(targets),
    )
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        raise ConfigError(
            f"lora.target_modules {list(targets)} do not match the model's modules "
            f"({str(err).splitlines()[0][:200]}); name its linear layers, e.g. q_proj, "
            f"v_proj"
        ) from err


def is_peft(model) -> bool:
    """Whether ``model`` is a peft model (carries an adapter)."""
    return hasattr(model, "peft_config")


def merged_copy(model):
    """A plain transformers model with the adapter merged in; ``model`` itself is left untouched."""
    return copy.deepcopy(model).merge_and_unload() if is_peft(model) else model


def export_model(model, tokenizer, path: str | Path, mode: ExportMode = "full") -> Path:
    """Write ``model`` and its tokenizer to ``path`` as a ``save_pretrained`` directory; returns ``path``."""
    if mode == "adapter" and not is_peft(model):
        raise ConfigError(
            "export mode 'adapter' needs a LoRA model (set `lora:`); use 'full' for a fully fine-tuned model"
        )
    if mode not in ("full", "adapter", "merged"):
        raise ConfigError(f"unknown export mode {mode!r}; use full, adapter or merged")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        to_save = model if mode == "adapter" else merged_copy(model)
        to_save.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
