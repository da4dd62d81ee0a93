"""Run a model in eval mode for a while: generation and scoring inside a training step or a validation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def eval_mode(model, no_grad: bool = True) -> Iterator[None]:
    """``model`` in eval mode inside (without autograd unless ``no_grad=False``), its previous train / eval
    mode restored on exit, also when the body raises."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad() if no_grad else torch.enable_grad():
            yield
    finally:
        model.train(was_training)
