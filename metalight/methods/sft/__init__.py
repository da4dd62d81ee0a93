"""Supervised fine-tuning (``module``): tokenisation (``encoding``), the completion loss (``loss``), the
model's collected answers (``answers``) and the target builders (``targets``)."""

from metalight.methods.sft.module import SFTModule

__all__ = ["SFTModule"]
