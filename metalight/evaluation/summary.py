"""Per-source metrics and threshold sweeps over one split's samples (shared by local and API evaluation)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import SampleResult
from metalight.evaluation.sources import SOURCES, SourceScores
from metalight.metrics.registry import metric_names
from metalight.metrics.selective import (
    Criterion,
    confidence_metrics,
    quantile_thresholds,
    select_threshold,
    threshold_table,
)
from metalight.metrics.type2 import Correction


@dataclass
class ScoredSample(SampleResult):
    """A dual-prompt result plus each confidence source's score, yes-report and extras (one samples line)."""

    confidence: dict[str, float] = field(default_factory=dict)
    reports: dict[str, bool | None] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)


def attach_sources(results: list[SampleResult], batches: dict[str, SourceScores]) -> list[ScoredSample]:
    """Combine a batch's results with its source scores, row by row."""
    out = []
    for i, result in enumerate(results):
        base = {f.name: getattr(result, f.name) for f in fields(SampleResult)}
        extras: dict[str, Any] = dict(getattr(result, "extras", {}))
        for scores in batches.values():
            if scores.extras:
                extras.update(scores.extras[i])
        out.append(
            ScoredSample(
                **base,
                confidence={n: float(b.score[i]) for n, b in batches.items()},
                reports={n: (b.report[i] if b.report is not None else None) for n, b in batches.items()},
                extras=extras,
            )
        )
    return out


def _mean(values: list[bool]) -> float:
    return sum(values) / len(values) if values else math.nan


def idk_rates(samples: list[ScoredSample]) -> dict[str, float]:
    """ESMA's IDK numbers from the IDK prompt's own answers: abstention rate, accuracy of the answered
    ones, and accuracy over all questions (abstentions count as wrong)."""
    rows = [s.extras for s in samples if s.extras.get("idk_answered") is not None]
    answered = [bool(r["idk_answered"]) for r in rows]
    return {
        "idk/abstention_rate": _mean([not a for a in answered]),
        "idk/answered_accuracy": _mean([bool(r["idk_correct"]) for r in rows if r["idk_answered"]]),
        "idk/prompt_accuracy": _mean([bool(r["idk_correct"]) for r in rows]),
    }


def load_thresholds(path: str | None) -> dict[str, float]:
    """Thresholds chosen on validation, read from a report JSON written by a validation run."""
    if path is None:
        return {}
    file = Path(path)
    if not file.is_file():
        raise ConfigError(
            f"thresholds_from: {path} not found; point it at the report of a validation run "
            f"(e.g. runs/<experiment>/version_0/reports/val_step0.json)"
        )
    report = json.loads(file.read_text())
    if not isinstance(report.get("thresholds"), dict):
        raise ConfigError(
            f"thresholds_from: {path} has no 'thresholds' section; it must come from an evaluation "
            f"with confidence sources (ConfidenceEvalModule or APIEvalModule)"
        )
    return {name: float(entry["threshold"]) for name, entry in report["thresholds"].items()}


def summarize_sources(
    samples: list[ScoredSample],
    names: list[str],
    split: str,
    correction: Correction,
    criterion: Criterion,
    sweep_points: int,
    carried: dict[str, float],
) -> tuple[dict[str, float], dict[str, Any], dict[str, float]]:
    """Metrics of every source against the direct answers' correctness, plus a threshold per source: the one
    ``carried`` from validation when given, else the best on this split by ``criterion``.

    Returns (metrics keyed ``<source>/<key>`` for the registry's source metrics and
    ``<source>/threshold_<key>`` for its threshold metrics, report details with the sweeps, the thresholds
    used)."""
    metrics: dict[str, float] = {}
    sweeps: dict[str, Any] = {}
    used: dict[str, float] = {}
    if not samples:
        return metrics, {}, used
    correct = torch.tensor([s.correct for s in samples], dtype=torch.bool)
    for name in names:
        score = torch.tensor([s.confidence[name] for s in samples], dtype=torch.float64)
        reports = [s.reports[name] for s in samples]
        report = None if any(r is None for r in reports) else torch.tensor(reports, dtype=torch.bool)
        values = confidence_metrics(correct, score, report, SOURCES[name].probability, correction)
        metrics.update({f"{name}/{key}": float(values[key]) for key in metric_names("source")})
        if torch.isnan(score).all():
            continue
        if name in carried:
            threshold, selected_on = carried[name], "val"
        else:
            threshold, selected_on = (
                select_threshold(correct, score, criterion, correction)["threshold"],
                split,
            )
        at = threshold_table(correct, score, torch.tensor([threshold], dtype=torch.float64), correction)[0]
        used[name] = threshold
        metrics[f"{name}/threshold"] = threshold
        metrics.update({f"{name}/threshold_{key}": at[key] for key in metric_names("threshold")})
        sweeps[name] = {
            "threshold": threshold,
            "selected_on": selected_on,
            "criterion": criterion,
            "at_threshold": at,
            "sweep": threshold_table(correct, score, quantile_thresholds(score, sweep_points), correction),
        }
    if "idk" in names:
        metrics.update(idk_rates(samples))
    return metrics, {"thresholds": sweeps}, used
