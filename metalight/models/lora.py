"""LoRA adapters through peft: the settings a config gives and the call that wraps a model with them."""

from __future__ import annotations

from dataclasses import dataclass, field

from metalight.errors import ConfigError


@dataclass(frozen=True)
class LoraSettings:
    """A LoRA adapter on a causal LM (Hu et al. 2021), trained while the base weights stay frozen.

    Args:
        r: adapter rank.
        alpha: scaling numerator; the update is (alpha / r)·BA.
        dropout: dropout on the adapter input during training.
        target_modules: module names to adapt (e.g. ``[q_proj, v_proj]``), or ``all-linear``.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: list[str] | str = field(default="all-linear")

    def __post_init__(self):
        if self.r < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ConfigError(f"lora: r >= 1, alpha > 0 and 0 <= dropout < 1 are required, got r={self.r}, "
                              f"alpha={self.alpha}, dropout={self.dropout}")


def apply_lora(model, settings: LoraSettings):
    """Wrap ``model`` in a peft ``PeftModel`` with a fresh LoRA adapter; only the adapter is trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=settings.target_modules, task_type="CAUSAL_LM")
    return get_peft_model(model, config)


def is_peft_model(model) -> bool:
    """Whether ``model`` carries peft adapters (so ``disable_adapter()`` gives the base model)."""
    return hasattr(model, "disable_adapter") and hasattr(model, "peft_config")
