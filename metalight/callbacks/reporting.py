"""Writes each evaluation's ``report.json`` and ``samples/<split>.jsonl`` into the run directory."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_only

from metalight.io import atomic_write_json, atomic_write_jsonl

log = logging.getLogger(__name__)

REPORT_KEYS = ("n", "accuracy", "dprime_type2", "hit_rate", "false_alarm_rate", "auroc_type2", "prr",
               "raw_alignment", "yes_ratio", "rmi", "ece", "brier", "meta_d_prime", "m_ratio", "meta_unparsed_rate")
TABLE_KEYS = ("n", "accuracy", "dprime_type2", "auroc_type2", "prr", "raw_alignment", "yes_ratio", "ece", "brier",
              "meta_unparsed_rate")


def run_dir(trainer: Trainer) -> Path:
    """The run directory: the logger's ``runs/<experiment>/version_N`` (or the trainer's root dir)."""
    return Path(trainer.log_dir or trainer.default_root_dir)


def format_table(report: dict[str, Any], keys=TABLE_KEYS) -> str:
    """A two-column text table of the report's main numbers."""
    width = max(len(k) for k in keys)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  -------"]
    for key in keys:
        value = report.get(key, float("nan"))
        text = f"{value:d}" if isinstance(value, int) else f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


class ReportWriter(Callback):
    """After every validation / test pass: write ``report.json`` (latest), ``reports/<split>_step<k>.json``
    (history) and ``samples/<split>.jsonl`` atomically on rank 0, and print the main numbers.

    Args:
        print_table: print a table after ``validate`` / ``test`` (and one line per validation during ``fit``).
    """

    def __init__(self, print_table: bool = True):
        self.print_table = print_table

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "test")

    def build_report(self, trainer: Trainer, pl_module: LightningModule, outcome) -> dict[str, Any]:
        """Metrics plus the settings that change them."""
        datamodule = trainer.datamodule
        dataset = datamodule.describe_name() if hasattr(datamodule, "describe_name") else type(datamodule).__name__
        metrics = {key: outcome.metrics.get(key, math.nan) for key in REPORT_KEYS}
        metrics["n"] = int(metrics["n"])
        extra = {k: v for k, v in outcome.metrics.items() if k not in metrics}
        return {**metrics, **extra, "split": outcome.split, "step": outcome.step, "epoch": outcome.epoch,
                "dataset": dataset, "experiment": run_dir(trainer).parent.name, **pl_module.report_settings()}

    @rank_zero_only
    def _write(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        outcome = getattr(pl_module, "eval_outcomes", {}).pop(split, None)
        if outcome is None:
            return
        out = run_dir(trainer)
        report = self.build_report(trainer, pl_module, outcome)
        samples = [s.to_json() for s in outcome.samples]
        atomic_write_jsonl(out / "samples" / f"{split}_step{outcome.step}.jsonl", samples)
        atomic_write_jsonl(out / "samples" / f"{split}.jsonl", samples)
        atomic_write_json(out / "reports" / f"{split}_step{outcome.step}.json", report)
        atomic_write_json(out / "report.json", report)
        if not self.print_table:
            return
        if trainer.state.fn == "fit":
            print(f"[{split} step {outcome.step}] " + "  ".join(
                f"{k}={report[k]:.3f}" for k in ("accuracy", "dprime_type2", "auroc_type2", "raw_alignment")),
                flush=True)
        else:
            print(f"\n{report['dataset']} · {split} · {report['model']}\n{format_table(report)}\n"
                  f"report: {out / 'report.json'}", flush=True)
