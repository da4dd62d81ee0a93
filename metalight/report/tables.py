"""Markdown tables of reports: one run's confidence sources, and several runs side by side."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metalight.errors import ConfigError
from metalight.metrics.registry import metric_names, metric_spec
from metalight.report.runs import resolve_report

ALWAYS_SHOWN = ("model", "dataset", "split", "step")


def load_reports(
    paths: Sequence[str | Path], names: Sequence[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Reports keyed by a column name: ``names`` if given, else ``<experiment>/<version>`` of each path."""
    files = [resolve_report(p) for p in paths]
    if names is not None and len(names) != len(files):
        raise ConfigError(f"--names has {len(names)} entries for {len(files)} runs; give one name per run")
    keys = list(names) if names else [_default_name(f) for f in files]
    for i, key in enumerate(keys):  # the same experiment/version from different roots
        if keys.count(key) > 1:
            keys[i] = f"{key} ({i + 1})"
    return {key: json.loads(f.read_text()) for key, f in zip(keys, files)}


def _default_name(file: Path) -> str:
    parts = file.parent.parts[-2:] if file.name == "report.json" else (*file.parent.parts[-2:-1], file.stem)
    return "/".join(parts) or file.stem


def _format(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.4f}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def markdown_rows(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table: ``header`` and one line per row (cells as ``str`` writes them)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows])


def comparison_rows(reports: dict[str, dict[str, Any]], keys: Sequence[str] | None = None) -> list[str]:
    """The metric rows to show: ``keys``, or the registry's table metrics plus each confidence source's."""
    if keys:
        return list(keys)
    rows = [k for k in metric_names("report", "table") if any(k in r for r in reports.values())]
    sources = []
    for report in reports.values():
        for source in report.get("confidence_sources", []):
            if source not in sources:
                sources.append(source)
    rows += [
        f"{s}/{k}"
        for s in sources
        for k in metric_names("source", "table")
        if any(f"{s}/{k}" in r for r in reports.values())
    ]
    return rows


def markdown_table(reports: dict[str, dict[str, Any]], keys: Sequence[str] | None = None) -> str:
    """Metrics as rows, runs as columns; below them the model/dataset/split/step and every other setting
    whose value differs between the runs."""
    names = list(reports)
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for key in comparison_rows(reports, keys):
        lines.append(f"| {key} | " + " | ".join(_format(reports[n].get(key)) for n in names) + " |")
    scalar = {
        k
        for r in reports.values()
        for k, v in r.items()
        if not isinstance(v, (int, float)) or isinstance(v, bool)
    }
    differing = sorted(
        k
        for k in scalar - set(ALWAYS_SHOWN) - {"thresholds", "experiment"}
        if len({_format(r.get(k)) for r in reports.values()}) > 1
    )
    for key in (*ALWAYS_SHOWN, *differing):
        lines.append(f"| *{key}* | " + " | ".join(_format(reports[n].get(key)) for n in names) + " |")
    return "\n".join(lines)


def source_columns() -> list[tuple[str, str]]:
    """(key suffix, header) of the per-source table: the registry's table metrics that are computed per
    source, then its threshold metrics at the chosen threshold."""
    return [(key, metric_spec(key).label) for key in metric_names("source", "table")] + [
        (f"threshold_{key}", f"{metric_spec(key).label} @ thr") for key in metric_names("threshold")
    ]


def sources_table(report: dict[str, Any]) -> str:
    """One row per confidence source of a report (ConfidenceEvalModule / APIEvalModule), as markdown:
    the columns of :func:`source_columns` (ranking, the source's own yes-report, calibration for
    probabilities, the share of answers with a score, the operating point at the chosen threshold)."""
    from metalight.evaluation.sources import SOURCES

    sources = report.get("confidence_sources") or []
    columns = source_columns()
    lines = [
        "| source | " + " | ".join(label for _, label in columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for source in sources:
        label = SOURCES[source].label if source in SOURCES else source
        lines.append(
            f"| {label} | " + " | ".join(_format(report.get(f"{source}/{key}")) for key, _ in columns) + " |"
        )
    return "\n".join(lines)
