"""Activation steering: add α·u to the residual stream after one block (a forward hook, as repeng's
``ControlModel`` does, without mutating the model). Every position is shifted, prompt and generated tokens
alike; padded positions are shifted too, but no real token attends to them, so outputs are unchanged there.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor

from metalight.methods.probes.extraction import check_layers, decoder_blocks


@contextmanager
def steer(model, layer: int, direction: Tensor, alpha: float) -> Iterator[None]:
    """Within the block, the output of block ``layer`` (HF ``hidden_states[layer + 1]``) gets
    ``alpha·direction`` added; with a unit direction, the projection on it moves by exactly ``alpha``."""
    check_layers(model, [layer])
    block = decoder_blocks(model)[layer]
    shift = None

    def hook(module, inputs, output):
        nonlocal shift
        hidden = output[0] if isinstance(output, tuple) else output
        if shift is None:
            shift = (alpha * direction).to(device=hidden.device, dtype=hidden.dtype)
        hidden = hidden + shift
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handle = block.register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
