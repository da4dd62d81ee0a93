"""Weight deltas of a fine-tuned model and sparse patching (ESMA §5.6, ``scripts/*_weight_change.py``).

Δ[name] = tuned − base for every parameter (tied weights once), saved as safetensors. Patching adds to the
base model the full Δ or only a share of its entries chosen by magnitude: ``top`` p = the p fraction with
the largest |Δ|, ``bottom`` p = the p fraction with the smallest |Δ|, ``all_but_top`` p = every entry except
the top p, i.e. the smallest 1 − p (what upstream's ``--from-bottom`` did with ratio p), under one ``global``
threshold over all tensors (upstream) or one per tensor; round(p · n) entries are kept (round((1 − p) · n)
for ``all_but_top``), up to ties at the threshold.
Δ is stored in float32 when base + Δ reproduces the tuned weights exactly in float32 (checked), else float64,
so a 100% patch gives back the tuned model bit for bit (float64 is exact for float32 weights whose base
and tuned magnitudes are within 2^29 of each other — any fine-tuning change short of a weight jumping
from ~1 to ~1e-9).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from metalight.errors import ConfigError

log = logging.getLogger(__name__)

Keep = Literal["top", "bottom", "all_but_top"]
Scope = Literal["global", "per_tensor"]


def _reproduces(base: Tensor, delta: Tensor, tuned: Tensor) -> bool:
    return torch.equal((base.double() + delta.double()).to(tuned.dtype), tuned)


def weight_delta(base: nn.Module, tuned: nn.Module) -> dict[str, Tensor]:
    """Δ = tuned − base per parameter name of ``tuned`` (float32 when that is exact, else float64)."""
    base_params = dict(base.named_parameters())
    deltas: dict[str, Tensor] = {}
    for name, param in tuned.named_parameters():
        if name not in base_params or base_params[name].shape != param.shape:
            raise ConfigError(
                f"parameter {name}: missing or of another shape in the base model; the two models "
                f"must share an architecture"
            )
        base_value, tuned_value = base_params[name].detach().cpu(), param.detach().cpu()
        delta = tuned_value.double() - base_value.double()
        single = delta.float()
        deltas[name] = single if _reproduces(base_value, single, tuned_value) else delta
    wide = [n for n, d in deltas.items() if d.dtype == torch.float64]
    if wide:
        log.info(
            "%d tensors kept in float64: their float32 delta would not restore the tuned weights exactly",
            len(wide),
        )
    return deltas


def save_delta(deltas: dict[str, Tensor], path: str | Path) -> Path:
    """Write the deltas as one safetensors file (written to a temporary name, then renamed)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({k: v.contiguous() for k, v in deltas.items()}, str(tmp))
    tmp.replace(path)
    return path


def load_delta(path: str | Path) -> dict[str, Tensor]:
    """Read a delta file written by :func:`save_delta`."""
    from safetensors.torch import load_file

    if not Path(path).is_file():
        raise ConfigError(f"delta file not found: {path}; create it with scripts/extract_weight_change.py")
    return load_file(str(path))


def _threshold(magnitudes: Tensor, ratio: float, keep: Keep) -> tuple[float, bool]:
    """(threshold, keep entries above it?) selecting round(ratio · n) entries by magnitude (ties at the
    threshold aside; upstream's ``kthvalue`` rule kept one entry more)."""
    n = magnitudes.numel()
    count = round(n * ratio)
    if keep == "top":  # keep |Δ| > the largest magnitude left out
        return (magnitudes.kthvalue(n - count).values.item() if count < n else -1.0), True
    return (magnitudes.kthvalue(count).values.item() if count else -1.0), False


def keep_masks(
    deltas: dict[str, Tensor],
    ratio: float,
    keep: Keep = "top",
    scope: Scope = "global",
    skip_prefixes: Iterable[str] = (),
) -> dict[str, Tensor]:
    """Boolean masks of the entries to apply: ``ratio`` of them by |Δ| (see module docstring); tensors whose
    name starts with a ``skip_prefixes`` entry get an all-false mask (the global threshold still counts them,
    as upstream)."""
    if not 0 <= ratio <= 1:
        raise ConfigError(f"ratio: {ratio} must be in [0, 1]")
    if keep not in ("top", "bottom", "all_but_top") or scope not in ("global", "per_tensor"):
        raise ConfigError(
            f"keep: {keep!r} / scope: {scope!r}; use keep top|bottom|all_but_top and scope global|per_tensor"
        )
    if keep == "all_but_top":  # upstream's --from-bottom: the complement of the top p is the bottom 1 - p
        ratio, keep = 1 - ratio, "bottom"
    skip = tuple(skip_prefixes)
    masks: dict[str, Tensor] = {}
    if scope == "global" and 0 < ratio < 1:
        threshold, above = _threshold(
            torch.cat([d.abs().flatten().float() for d in deltas.values()]), ratio, keep
        )
    for name, delta in deltas.items():
        magnitude = delta.abs().float()
        if ratio == 0 or (skip and name.startswith(skip)):
            masks[name] = torch.zeros_like(delta, dtype=torch.bool)
            continue
        if ratio == 1:
            masks[name] = torch.ones_like(delta, dtype=torch.bool)
            continue
        if scope == "per_tensor":
            threshold, above = _threshold(magnitude.flatten(), ratio, keep)
        masks[name] = magnitude > threshold if above else magnitude <= threshold
    return masks


@torch.no_grad()
def apply_delta(model: nn.Module, deltas: dict[str, Tensor], masks: dict[str, Tensor]) -> dict[str, float]:
    """Add the masked deltas to ``model``'s parameters in place (sums in float64); returns the kept share
    per tensor."""
    params = dict(model.named_parameters())
    unknown = sorted(set(deltas) - set(params))
    if unknown:
        raise ConfigError(
            f"the delta has parameters the model lacks ({unknown[:3]}); use the base model the "
            f"delta was extracted against"
        )
    kept = {}
    for name, delta in deltas.items():
        param, mask = params[name], masks[name].to(params[name].device)
        patched = param.detach().double() + delta.to(param.device).double()
        param.copy_(torch.where(mask, patched.to(param.dtype), param))
        kept[name] = mask.float().mean().item()
    return kept
