"""The per-level picture of a training run: accuracy and mean P(yes) per difficulty level, before vs after.

One figure answers "did the model learn where it is competent?": in the left panel accuracy per level
(training should leave it where it was), in the right panel mean P(yes) per level (a model that knows what it
knows says yes where its accuracy is high). The same numbers go to TensorBoard as ``levels/<family>/L<n>/
accuracy`` and ``.../mean_p_yes`` at the step before (0) and after training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from metalight.evaluation.levels import LevelStats
from metalight.report.plots import save_png

BEFORE_COLOR, AFTER_COLOR = "#8d99ae", "#2a9d8f"


def plot_levels(before: list[LevelStats], after: list[LevelStats], path: str | Path, title: str = "") -> Path:
    """Grouped bars per level (before / after) of accuracy and of mean P(yes); written as a PNG atomically."""
    later = {(s.family, s.level): s for s in after}
    levels = [s for s in before if (s.family, s.level) in later]
    if not levels:
        raise ValueError(
            "no level is measured both before and after: were the records from a testbed with levels?"
        )
    x = np.arange(len(levels))
    fig = Figure(figsize=(max(7.0, 1.1 * len(levels) + 3), 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, field, name in ((axes[0], "accuracy", "accuracy"), (axes[1], "mean_p_yes", "mean P(yes)")):
        ax.bar(x - 0.2, [getattr(s, field) for s in levels], 0.4, label="before", color=BEFORE_COLOR)
        ax.bar(
            x + 0.2,
            [getattr(later[(s.family, s.level)], field) for s in levels],
            0.4,
            label="after",
            color=AFTER_COLOR,
        )
        ax.set_xticks(x, [f"L{s.level}\n{s.name}" for s in levels], fontsize=7, rotation=30, ha="right")
        ax.set(title=f"{name} per level", ylim=(0, 1))
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("share of questions / probability")
    axes[1].legend()
    if title:
        fig.suptitle(title, wrap=True)
    return save_png(fig, path)


def level_scalars(
    before: list[LevelStats], after: list[LevelStats], step: int
) -> list[tuple[str, float, int]]:
    """``(tag, value, step)`` rows: every level's accuracy and mean P(yes) at step 0 (before) and ``step``."""
    rows = []
    for stats, at in ((before, 0), (after, step)):
        for s in stats:
            rows += [
                (f"levels/{s.family}/L{s.level}/accuracy", s.accuracy, at),
                (f"levels/{s.family}/L{s.level}/mean_p_yes", s.mean_p_yes, at),
            ]
    return rows


def log_levels(log_dir: str | Path, before: list[LevelStats], after: list[LevelStats], step: int) -> int:
    """Write :func:`level_scalars` to a TensorBoard event file in ``log_dir``; returns how many."""
    from torch.utils.tensorboard import SummaryWriter

    rows = level_scalars(before, after, step)
    writer = SummaryWriter(str(log_dir))
    try:
        for tag, value, at in rows:
            writer.add_scalar(tag, value, at)
    finally:
        writer.close()
    return len(rows)
