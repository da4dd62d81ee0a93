"""Weight-patching sweep (ESMA §5.6, upstream's analysis notebook): patch the base model with a share p of
the fine-tuning change Δ, for several p, and measure each patched model on held-out questions.

For every selection rule (``keep``: ``top`` p, ``bottom`` p or ``all_but_top`` p — upstream's
``--from-bottom``, the smallest 1 − p; see :mod:`metalight.models.weight_delta`) and ratio p, the base
weights are restored, the masked Δ added, and the dual-prompt evaluation run; each row holds p, the share of
Δ entries applied, accuracy (share of correct direct answers) and d'type2 (with its hit / false-alarm rates).
p = 0 is the base model and p = 1 under ``top`` the tuned one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings, evaluate_records, results_to_tensors
from metalight.metrics.registry import compute_values
from metalight.models.weight_delta import Keep, Scope, apply_delta, keep_masks

# the registry metrics of each row (beside the share of Δ applied, the mean P(yes) and n)
SWEEP_METRICS = ("accuracy", "dprime_type2", "hit_rate", "false_alarm_rate", "yes_ratio")
KEEP_LABELS = {
    "top": "top p (largest |Δ|)",
    "bottom": "bottom p (smallest |Δ|)",
    "all_but_top": "all but top p (upstream --from-bottom)",
}


@torch.no_grad()
def patch_sweep(
    model: nn.Module,
    tokenizer,
    deltas: dict[str, Tensor],
    records: Sequence[QARecord],
    ratios: Sequence[float],
    keeps: Sequence[Keep] = ("top",),
    scope: Scope = "global",
    settings: EvalSettings | None = None,
    correction: str = "clip",
) -> list[dict[str, Any]]:
    """One row per (keep, ratio): the patched model's accuracy and d'type2 on ``records`` (``settings``:
    the evaluation's, default ``EvalSettings()``). ``model`` holds the base weights on entry and on return."""
    settings = settings if settings is not None else EvalSettings()
    if not records:
        raise ConfigError(
            "the patch sweep got no held-out questions; check the config's data split and max_samples"
        )
    params = dict(model.named_parameters())
    base = {name: params[name].detach().clone() for name in deltas if name in params}
    total = sum(d.numel() for d in deltas.values())
    rows = []
    try:
        for keep in keeps:
            for ratio in ratios:
                kept = apply_delta(model, deltas, keep_masks(deltas, ratio, keep, scope))
                tensors = results_to_tensors(evaluate_records(model, tokenizer, records, settings))
                values = compute_values(tensors, SWEEP_METRICS, {"correction": correction})
                rows.append(
                    {
                        "keep": keep,
                        "ratio": float(ratio),
                        "applied_share": sum(kept[n] * deltas[n].numel() for n in deltas) / total,
                        **{name: float(value) for name, value in values.items()},
                        "mean_p_yes": tensors["confidence"].float().nanmean().item(),
                        "n": len(records),
                    }
                )
                _restore(params, base)
    finally:
        _restore(params, base)
    return rows


def _restore(params: dict[str, nn.Parameter], base: dict[str, Tensor]) -> None:
    for name, value in base.items():
        params[name].copy_(value)


def plot_sweep(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """d'type2 and accuracy against p, one line per selection rule, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for keep in dict.fromkeys(r["keep"] for r in rows):
        mine = sorted((r for r in rows if r["keep"] == keep), key=lambda r: r["ratio"])
        ratios = [100 * r["ratio"] for r in mine]
        for axis, key in zip(axes, ("dprime_type2", "accuracy")):
            axis.plot(
                ratios,
                [r[key] if not math.isnan(r[key]) else float("nan") for r in mine],
                marker="o",
                label=KEEP_LABELS[keep],
            )
    for axis, label in zip(axes, ("d′type2", "accuracy")):
        axis.set_xlabel("p (% of Δ entries, by |Δ|)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
