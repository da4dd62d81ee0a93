"""In-place perturbation θ ← θ + s·ε (ε regenerated from the member seed, never stored for the whole
model) and its restoration.

``restore="subtract"`` undoes the perturbation by regenerating ε and subtracting it (upstream; extra memory
one noise tensor). Floating-point addition is not invertible, so each cycle may leave a rounding error of
up to about one unit in the last place per weight (measured in ``tests/methods/esma/test_perturb.py``).
``restore="copy"`` keeps a copy of each perturbed tensor and copies it back: bitwise exact, at the cost
of one copy of the perturbed parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch

from metalight.methods.esma.noise import NoiseScheme

RestoreMode = Literal["subtract", "copy"]


@torch.no_grad()
def add_noise_(scheme: NoiseScheme, seed: int, scale: float) -> None:
    """θ ← θ + scale·ε(seed) on every tensor the scheme perturbs, in place (in the parameter dtype)."""
    for index, eps in scheme.iter_noise(seed, scheme.scratch):
        scheme.selected[index].param.data.add_(eps, alpha=scale)


@contextmanager
def perturbed(
    scheme: NoiseScheme, seed: int, scale: float, restore: RestoreMode = "subtract"
) -> Iterator[None]:
    """Context in which the parameters are θ + scale·ε(seed); on exit they are restored (see module doc)."""
    saved = None
    if restore == "copy":
        saved = {i: scheme.selected[i].param.detach().clone() for i in scheme.perturbed_indices()}
    add_noise_(scheme, seed, scale)
    try:
        yield
    finally:
        if saved is not None:
            for index, value in saved.items():
                scheme.selected[index].param.data.copy_(value)
        else:
            add_noise_(scheme, seed, -scale)
