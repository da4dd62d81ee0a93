"""Writes each evaluation's ``report.json``, ``samples/<split>.jsonl`` and plots into the run directory."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from metalight.io import atomic_write_json, atomic_write_jsonl
from metalight.metrics.registry import metric_names

log = logging.getLogger(__name__)


def run_dir(trainer: Trainer) -> Path:
    """The run directory: the logger's ``runs/<experiment>/version_N`` (or the trainer's root dir)."""
    return Path(trainer.log_dir or trainer.default_root_dir)


def write_report(out: Path, report: dict[str, Any], history: str | None = None) -> Path:
    """The one writer of ``report.json``: ``out/report.json`` (the latest) and, when ``history`` names it,
    ``out/reports/<history>.json``, each written atomically (strict JSON: undefined values as ``null``)."""
    if history is not None:
        atomic_write_json(out / "reports" / f"{history}.json", report)
    atomic_write_json(out / "report.json", report)
    return out / "report.json"


def add_to_report(out: Path, extra: dict[str, Any]) -> Path:
    """Merge ``extra`` into ``out/report.json`` (created when missing), atomically."""
    path = out / "report.json"
    report = json.loads(path.read_text()) if path.is_file() else {}
    return write_report(out, {**report, **extra})


def format_table(report: dict[str, Any], keys: Sequence[str] | None = None) -> str:
    """A two-column text table of the report's main numbers (default: the registry's table metrics)."""
    keys = metric_names("report", "table") if keys is None else keys
    width = max(len(k) for k in keys)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -------"]
    for key in keys:
        value = report.get(key, float("nan"))
        text = f"{value:d}" if isinstance(value, int) else f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


def rows_line(report: dict[str, Any]) -> str:
    """One line saying which rows were evaluated and which were skipped, cut, failed or weakly credited."""
    parts = [f"rows: {report['n']} evaluated"]
    if "rows_read" in report:
        parts[0] += f" of {report['rows_read']} read ({report['split_rule']})"
    counts = [("skipped_rows", "skipped as malformed"), ("truncated_rows", "prompts truncated"),
              ("api_failed", "API-failed"), ("suspect_matches", "suspect matches")]
    parts += [f"{int(report[key] or 0)} {label}" for key, label in counts if key in report]
    if report.get("evaluated_rows", 0) < report.get("split_rows", 0):
        first = " (its first rows)" if report.get("max_samples_from") == "start" else ""
        parts.append(f"capped at max_samples from {report['split_rows']}{first}")
    return "; ".join(parts)


class ReportWriter(Callback):
    """After every validation / test pass: write ``report.json`` (latest), ``reports/<split>_step<k>.json``
    (history) and ``samples/<split>.jsonl`` atomically on rank 0, draw the plots, and print the main numbers
    and the row counts (:func:`rows_line`). Undefined values are written as ``null`` (strict JSON).

    Plots (``plots/<split>_<name>.png``, also logged to TensorBoard as ``<split>/plots/<name>``): the type-2
    ROC, the reliability diagram and the confidence histograms by outcome of every confidence score, and
    during ``fit`` the validation metrics against the step (:mod:`metalight.report.plots`).

    Args:
        print_table: print the registry's table metrics after ``validate`` / ``test`` (and its curve metrics in
            one line per validation during ``fit``).
        plots: draw the plots.
    """

    def __init__(self, print_table: bool = True, plots: bool = True):
        self.print_table = print_table
        self.plots = plots

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "test")

    def build_report(self, trainer: Trainer, pl_module: LightningModule, outcome, out: Path) -> dict[str, Any]:
        """Metrics plus the settings that change them."""
        datamodule = trainer.datamodule
        dataset = datamodule.describe_name() if hasattr(datamodule, "describe_name") else type(datamodule).__name__
        metrics = {key: outcome.metrics.get(key, math.nan) for key in metric_names("report")}
        metrics["n"] = int(metrics["n"])
        extra = {k: v for k, v in outcome.metrics.items() if k not in metrics}
        rows = datamodule.split_summary(outcome.split) if hasattr(datamodule, "split_summary") else {}
        return {**metrics, **extra, "split": outcome.split, "step": outcome.step, "epoch": outcome.epoch,
                "dataset": dataset, "experiment": out.parent.name, **pl_module.report_settings(),
                **getattr(outcome, "details", {}), **rows}

    def _write(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        outcome = getattr(pl_module, "eval_outcomes", {}).pop(split, None)
        out = run_dir(trainer)  # a collective call under DDP: every rank must make it
        if outcome is None or not trainer.is_global_zero:
            return
        # The answers are the expensive part: they go to disk before anything that could still fail.
        samples = [s.to_json() for s in outcome.samples]
        atomic_write_jsonl(out / "samples" / f"{split}_step{outcome.step}.jsonl", samples)
        atomic_write_jsonl(out / "samples" / f"{split}.jsonl", samples)
        report = self.build_report(trainer, pl_module, outcome, out)
        write_report(out, report, history=f"{split}_step{outcome.step}")
        if self.plots:
            self._plot(trainer, out, report, samples)
        if not self.print_table:
            return
        if trainer.state.fn == "fit":
            print(f"[{split} step {outcome.step}] " + "  ".join(
                f"{k}={report[k]:.3f}" for k in metric_names("report", "curve")), flush=True)
        else:
            sources = ""
            if report.get("confidence_sources"):
                from metalight.report.tables import sources_table

                sources = f"\nconfidence sources (scored against the direct answers):\n{sources_table(report)}\n"
            print(f"\n{report['dataset']} · {split} · {report['model']}\n{format_table(report)}\n{sources}"
                  f"{rows_line(report)}\nreport: {out / 'report.json'}", flush=True)

    def _plot(self, trainer: Trainer, out: Path, report: dict[str, Any], samples: list[dict[str, Any]]) -> None:
        from metalight.report.plots import report_label, run_figures, save_png

        split = report["split"]
        history = None
        if trainer.state.fn == "fit" and split == "val":
            history = [json.loads(p.read_text()) for p in (out / "reports").glob("val_step*.json")]
        for name, figure in run_figures(samples, history, report_label(report, split)).items():
            save_png(figure, out / "plots" / f"{split}_{name}.png")
            for logger in trainer.loggers:
                experiment = getattr(logger, "experiment", None)
                if hasattr(experiment, "add_figure"):
                    experiment.add_figure(f"{split}/plots/{name}", figure, global_step=report["step"], close=False)
