"""Figures of one evaluation: type-2 ROC, reliability diagram, confidence histograms by outcome, metric curves
over training, and a comparison of several runs. Built on matplotlib's object API (no pyplot state), so
they are safe inside a training process; :func:`save_png` writes a PNG atomically. Figure titles wrap at the
figure's edges (``wrap=True``; constrained layout makes room for the extra lines), since one panel is narrow.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure

from metalight.evaluation.sources import SOURCES, SourceInfo
from metalight.io import atomic_write_bytes
from metalight.metrics.calibration import expected_calibration_error
from metalight.metrics.registry import metric_names, metric_title

CORRECT_COLOR, WRONG_COLOR = "#2a9d8f", "#e76f51"
RELIABILITY_BINS = 15  # as the ECE in report.json (MetacognitionMetrics, ConfidenceMetrics)
LINE_STYLES = ("-", "--", "-.", ":")
_FILE_NAME = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,5}$")  # ends in an extension: .json, .jsonl, .gguf


@dataclass
class ScoreColumn:
    """One confidence source over a split: score and correctness per answer, the optional yes-report."""

    name: str
    info: SourceInfo
    correct: np.ndarray
    score: np.ndarray
    report: np.ndarray | None = None

    @property
    def scored(self) -> np.ndarray:
        return ~np.isnan(self.score)

    @property
    def both_classes(self) -> bool:
        c = self.correct[self.scored]
        return bool(c.any() and (~c).any())


def columns_from_samples(samples: Sequence[dict[str, Any]]) -> list[ScoreColumn]:
    """Score columns from samples-file rows: ``p_yes`` and every entry of ``confidence``, skipping sources
    without any score."""
    if not samples:
        return []
    correct = np.array([bool(s["correct"]) for s in samples])
    names = ["p_yes"] + [n for n in samples[0].get("confidence", {}) if n != "p_yes"]
    out = []
    for name in names:
        values = [s["p_yes"] if name == "p_yes" else s["confidence"][name] for s in samples]
        score = np.array([math.nan if v is None else float(v) for v in values])
        if np.isnan(score).all():
            continue
        reports = [s.get("reports", {}).get(name) for s in samples]
        report = (
            np.array(reports, dtype=bool)
            if all(r is not None for r in reports)
            else score > 0.5
            if name == "p_yes"
            else None
        )
        info = SOURCES.get(name, SourceInfo(name, name, False, False))
        out.append(ScoreColumn(name, info, correct, score, report))
    return out


def source_color(name: str) -> str:
    """One colour per source in every figure (its position among the known sources)."""
    names = list(SOURCES)
    return f"C{names.index(name) % 10}" if name in names else "C9"


def _roc_points(correct: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F, H) at every distinct threshold, from (0, 0) to (1, 1): "confident" means score >= threshold."""
    order = np.argsort(-score, kind="stable")
    s, c = score[order], correct[order]
    ends = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last row of each group of equal scores
    hits = np.r_[0.0, np.cumsum(c)[ends] / c.sum()]
    false_alarms = np.r_[0.0, np.cumsum(~c)[ends] / (~c).sum()]
    return false_alarms, hits


def type2_roc_figure(columns: Sequence[ScoreColumn], title_suffix: str = "") -> Figure:
    """Type-2 ROC of every source with both outcomes, AUROC₂ in the legend; dots mark the yes-reports."""
    shown = [c for c in columns if c.both_classes]
    fig = Figure(figsize=(6.4, 6.2 + 0.22 * len(shown)), layout="constrained")
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", color="0.6", lw=1, label="chance (AUROC₂ = 0.5)")
    for i, col in enumerate(shown):
        keep = col.scored
        f, h = _roc_points(col.correct[keep], col.score[keep])
        auroc = float(np.sum(np.diff(f) * (h[1:] + h[:-1]) / 2))
        n_correct, n_wrong = int(col.correct[keep].sum()), int((~col.correct[keep]).sum())
        color = source_color(col.name)
        ax.plot(
            f,
            h,
            lw=1.8,
            color=color,
            ls=LINE_STYLES[i % len(LINE_STYLES)],
            label=f"{col.info.label}: AUROC₂ = {auroc:.3f} ({n_correct} right / {n_wrong} wrong scored)",
        )
        if col.report is not None:
            rep = col.report
            ax.plot(
                rep[~col.correct].mean(),
                rep[col.correct].mean(),
                "o",
                color=color,
                ms=7,
                mec="black",
                mew=0.6,
            )
    ax.plot([], [], "o", color="0.5", mec="black", mew=0.6, label="dot: the source's own yes/no report")
    ax.set(
        xlim=(-0.01, 1.01),
        ylim=(-0.01, 1.01),
        aspect="equal",
        xlabel="false-alarm rate F = P(confident | wrong answer)",
        ylabel="hit rate H = P(confident | correct answer)",
    )
    fig.suptitle(
        f"Type-2 ROC: does confidence separate right from wrong answers?{title_suffix}",
        fontsize=10,
        wrap=True,
    )
    ax.grid(alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=8, frameon=False)
    return fig


def reliability_figure(columns: Sequence[ScoreColumn], title_suffix: str = "") -> Figure | None:
    """Reliability diagram of each probability-valued source (fraction correct per confidence bin)."""
    probs = [c for c in columns if c.info.probability and c.scored.any()]
    if not probs:
        return None
    fig = Figure(figsize=(4.2 * len(probs), 4.4), layout="constrained")
    edges = np.linspace(0, 1, RELIABILITY_BINS + 1)
    for i, col in enumerate(probs):
        ax = fig.add_subplot(1, len(probs), i + 1)
        score, correct = col.score[col.scored], col.correct[col.scored]
        bins = np.clip(np.digitize(score, edges[1:-1]), 0, RELIABILITY_BINS - 1)
        width = edges[1] - edges[0]
        for b in range(RELIABILITY_BINS):
            members = bins == b
            if not members.any():
                continue
            accuracy = correct[members].mean()
            ax.bar(
                edges[b],
                accuracy,
                width=width,
                align="edge",
                color=source_color(col.name),
                alpha=0.75,
                edgecolor="white",
            )
            ax.text(
                edges[b] + width / 2,
                accuracy + 0.015,
                f"{int(members.sum())}",
                ha="center",
                fontsize=6.5,
                color="0.2",
            )
        ece = float(
            expected_calibration_error(
                torch.from_numpy(correct), torch.from_numpy(score), n_bins=RELIABILITY_BINS
            )
        )
        ax.plot([0, 1], [0, 1], ls="--", color="0.4", lw=1, label="perfect calibration")
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1.08),
            xlabel=f"{col.info.unit} (bin)",
            ylabel="fraction of answers correct in bin",
        )
        ax.set_title(f"{col.info.label}: ECE = {ece:.3f}, n = {int(col.scored.sum())}", fontsize=9)
        ax.legend(loc="upper left", fontsize=7.5)
    fig.suptitle(
        f"Reliability ({RELIABILITY_BINS} bins; number on a bar = its answers){title_suffix}",
        fontsize=10,
        wrap=True,
    )
    return fig


def histogram_figure(columns: Sequence[ScoreColumn], title_suffix: str = "") -> Figure | None:
    """Each source's score distribution for correct vs wrong answers (counts, n per class in the legend)."""
    shown = [c for c in columns if c.scored.any()]
    if not shown:
        return None
    cols = min(len(shown), 4)
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(3.9 * cols, 3.3 * rows), layout="constrained")
    for i, col in enumerate(shown):
        ax = fig.add_subplot(rows, cols, i + 1)
        score, correct = col.score[col.scored], col.correct[col.scored]
        classes = ((correct, CORRECT_COLOR, "correct"), (~correct, WRONG_COLOR, "wrong"))
        if set(np.unique(score)) <= {0.0, 1.0}:  # a yes/no report: side-by-side bars
            for offset, (mask, color, name) in zip((-0.18, 0.18), classes):
                share = [(score[mask] == v).mean() if mask.any() else 0.0 for v in (0.0, 1.0)]
                ax.bar(
                    np.array([0.0, 1.0]) + offset,
                    share,
                    width=0.34,
                    color=color,
                    alpha=0.8,
                    label=f"{name} (n={int(mask.sum())})",
                )
            ax.set_xticks([0, 1], ["no / abstain (0)", "yes / answered (1)"])
            ax.set_ylim(0, 1.25)  # room for the legend above the bars
        else:
            lo, hi = (0.0, 1.0) if col.info.probability else (float(score.min()), float(score.max()))
            edges = np.linspace(lo, hi if hi > lo else lo + 1, 21)
            for mask, color, name in classes:
                weights = np.full(int(mask.sum()), 1 / max(int(mask.sum()), 1))
                ax.hist(
                    score[mask],
                    bins=edges,
                    weights=weights,
                    histtype="stepfilled",
                    alpha=0.4,
                    color=color,
                    label=f"{name} (n={int(mask.sum())})",
                )
                ax.hist(score[mask], bins=edges, weights=weights, histtype="step", color=color, lw=1.2)
        ax.set(xlabel=col.info.unit, ylabel="share of the class's answers")
        ax.set_title(col.info.label, fontsize=10)
        ax.xaxis.label.set_fontsize(8)
        ax.legend(fontsize=7.5)
    fig.suptitle(
        f"Confidence by outcome (each colour sums to 1): little overlap = good metacognition{title_suffix}",
        fontsize=10,
        wrap=True,
    )
    return fig


def curves_figure(history: Sequence[dict[str, Any]], keys: Sequence[str] | None = None) -> Figure | None:
    """Validation metrics against the training step, one panel per metric (default: the registry's curve
    metrics)."""
    keys = metric_names("curve") if keys is None else keys
    points = sorted((r for r in history if "step" in r), key=lambda r: r["step"])
    keys = [k for k in keys if any(_finite(r.get(k)) for r in points)]
    if not points or not keys:
        return None
    cols = 3
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4.0 * cols, 3.0 * rows), layout="constrained")
    steps = [r["step"] for r in points]
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(steps, [r.get(key, math.nan) for r in points], marker="o", ms=4)
        ax.set(xlabel="training step", title=metric_title(key))
        ax.title.set_fontsize(10)
        ax.grid(alpha=0.3)
    n = points[-1].get("n")
    fig.suptitle(
        f"Validation metrics during training ({len(points)} evaluations"
        + (f", n = {int(n)} questions each)" if _finite(n) else ")"),
        fontsize=10,
        wrap=True,
    )
    return fig


def compare_figure(reports: dict[str, dict[str, Any]], keys: Sequence[str]) -> Figure:
    """One bar panel per metric, one bar per run (NaN shown as a gap labelled "n/a")."""
    keys = list(keys)
    cols = min(len(keys), 3)
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4.2 * cols, 0.5 + 0.45 * len(reports) * rows + 1.2 * rows), layout="constrained")
    names = list(reports)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(rows, cols, i + 1)
        values = [reports[n].get(key, math.nan) for n in names]
        finite = [v if _finite(v) else 0.0 for v in values]
        bars = ax.barh(range(len(names)), finite, color=[f"C{j}" for j in range(len(names))])
        for bar, value in zip(bars, values):
            ax.text(
                bar.get_width(),
                bar.get_y() + bar.get_height() / 2,
                f" {value:.3f}" if _finite(value) else " n/a",
                va="center",
                fontsize=7.5,
            )
        ax.set_yticks(range(len(names)), names, fontsize=7.5)
        ax.invert_yaxis()
        ax.set_title(metric_title(key), fontsize=10)
        ax.margins(x=0.25)
        ax.axvline(0, color="0.3", lw=0.8)
    fig.suptitle("Run comparison (report.json of each run)", fontsize=10, wrap=True)
    return fig


def figure_label(label: str, width: int = 90) -> str:
    """``label`` fit for a figure title, wrapped at ``width`` characters: a file path shortened to its file
    name (``dev.json``), a directory to its last two parts (a checkpoint's ``esma/hf``, a hub id)."""

    def shorten(path: re.Match) -> str:
        parts = path.group().rstrip("/").split("/")
        return parts[-1] if _FILE_NAME.search(parts[-1]) else "/".join(parts[-2:])

    return textwrap.fill(re.sub(r"[^/\s()·,]*/[^\s()·,]*", shorten, label), width)


def report_label(report: dict[str, Any], split: str) -> str:
    """The figures' subtitle for one evaluation: ``model · dataset · split (step k)`` from its report."""
    return f"{report.get('model', '')} · {report.get('dataset', '')} · {split} (step {report.get('step', 0)})"


def run_figures(
    samples: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]] | None = None, label: str = ""
) -> dict[str, Figure]:
    """Every figure of one evaluation pass, by name: ``type2_roc``, ``reliability``, ``confidence_hist``
    and, given the validation history of a training run, ``metric_curves``."""
    columns = columns_from_samples(samples)
    suffix = f"\n{figure_label(label)}" if label else ""
    figures = {
        "type2_roc": type2_roc_figure(columns, suffix) if columns else None,
        "reliability": reliability_figure(columns, suffix),
        "confidence_hist": histogram_figure(columns, suffix),
        "metric_curves": curves_figure(history) if history else None,
    }
    return {name: fig for name, fig in figures.items() if fig is not None}


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Render ``fig`` as a PNG and write it atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return atomic_write_bytes(path, buffer.getvalue())


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)
