"""In-place perturbation θ ← θ + s·ε (ε regenerated from the member seed, never stored for the whole
model), its restoration, and a measurement of how far add-then-subtract drifts in the parameter dtype.

``restore="subtract"`` undoes the perturbation by regenerating ε and subtracting it (upstream; extra memory
one noise tensor). Floating-point addition is not invertible, so each cycle may leave a rounding error of
up to about one unit in the last place per weight; :func:`restore_drift` measures it.
``restore="copy"`` keeps a copy of each perturbed tensor and copies it back: bitwise exact, at the cost
of one copy of the perturbed parameters.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
def perturbed(scheme: NoiseScheme, seed: int, scale: float, restore: RestoreMode = "subtract") -> Iterator[None]:
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


@dataclass
class Drift:
    """Restore error after ``cycles`` perturb/subtract cycles: largest absolute weight change, the change's
    norm relative to ‖θ‖, and a worst-case bound (cycles × 2 roundings of half an ulp of |θ| + |σε|)."""

    cycles: int
    max_abs: float
    relative_norm: float
    bound: float


@torch.no_grad()
def restore_drift(scheme: NoiseScheme, sigma: float, cycles: int = 1000, seed: int = 0) -> Drift:
    """Run ``cycles`` perturb/subtract cycles (new member seed each) and measure the drift; the parameters are
    put back exactly afterwards."""
    indices = scheme.perturbed_indices()
    original = {i: scheme.selected[i].param.detach().clone() for i in indices}
    try:
        largest_noise = 0.0
        for cycle in range(cycles):
            with perturbed(scheme, seed + cycle, sigma, "subtract"):
                pass
            if cycle == 0:
                largest_noise = max(eps.abs().max().item() for _, eps in scheme.iter_noise(seed)) * sigma
        diff_sq, norm_sq, max_abs, bound = 0.0, 0.0, 0.0, 0.0
        for i in indices:
            now, before = scheme.selected[i].param.detach().double(), original[i].double()
            delta = now - before
            diff_sq += delta.square().sum().item()
            norm_sq += before.square().sum().item()
            max_abs = max(max_abs, delta.abs().max().item())
            eps = torch.finfo(original[i].dtype).eps
            # Noise tails across cycles are not all seen: allow 8x the first cycle's largest |σε|.
            bound = max(bound, cycles * eps * (before.abs().max().item() + 8 * largest_noise))
        return Drift(cycles, max_abs, (diff_sq / max(norm_sq, 1e-30)) ** 0.5, bound)
    finally:
        for i, value in original.items():
            scheme.selected[i].param.data.copy_(value)
