"""Writes each evaluation's ``report.json``, ``samples/<split>.jsonl`` and plots into the run directory.

Answers are streamed to ``samples/<split>.partial.jsonl`` as each batch completes, so that a run stopped by
a signal (or killed) keeps them; a ``validate`` / ``test`` stopped by SIGTERM or SIGINT also writes the
report of the rows answered so far, marked ``"partial": true``. When the run directory cannot be written
(a full disk, made read-only), the answers and the report go to a rescue directory
(:mod:`metalight.callbacks.rescue`). A report of a checkpoint names it (``checkpoint``: path, global step,
epoch) and takes its step.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from metalight.callbacks.checkpoints import trained_questions
from metalight.callbacks.rescue import write_or_rescue
from metalight.errors import Interrupted
from metalight.io import append_lines, atomic_write_json, atomic_write_jsonl, json_line
from metalight.metrics.registry import metric_names
from metalight.models.checkpoints import checkpoint_header

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
        text = (
            f"{value:d}"
            if isinstance(value, int)
            else f"{value:.4f}"
            if isinstance(value, float)
            else str(value)
        )
        lines.append(f"{key:<{width}}  {text}")
    return "\n".join(lines)


def split_of(trainer: Trainer) -> str | None:
    """The split a ``validate`` / ``test`` run evaluates (``None`` during ``fit`` and otherwise)."""
    return {TrainerFn.VALIDATING: "val", TrainerFn.TESTING: "test"}.get(trainer.state.fn)


def rows_line(report: dict[str, Any]) -> str:
    """One line saying which rows were evaluated and which were skipped, cut, failed or weakly credited."""
    parts = [f"rows: {report['n']} evaluated"]
    if "rows_read" in report:
        parts[0] += f" of {report['rows_read']} read ({report['split_rule']})"
    counts = [
        ("skipped_rows", "skipped as malformed"),
        ("truncated_rows", "prompts truncated"),
        ("api_failed", "API-failed"),
        ("suspect_matches", "suspect matches"),
    ]
    parts += [f"{int(report[key] or 0)} {label}" for key, label in counts if key in report]
    if report.get("evaluated_rows", 0) < report.get("split_rows", 0):
        first = " (its first rows)" if report.get("max_samples_from") == "start" else ""
        parts.append(f"capped at max_samples from {report['split_rows']}{first}")
    return "; ".join(parts)


class ReportWriter(Callback):
    """After every validation / test pass: write ``report.json`` (latest), ``reports/<split>_step<k>.json``
    (history) and ``samples/<split>.jsonl`` atomically on rank 0, draw the plots, and print the main numbers
    and the row counts (:func:`rows_line`). Undefined values are written as ``null`` (strict JSON). See the
    module docstring for streamed answers, partial reports, rescued writes and checkpoint provenance.

    Plots (``plots/<split>_<name>.png``, also logged to TensorBoard as ``<split>/plots/<name>``): the type-2
    ROC, the reliability diagram and the confidence histograms by outcome of every confidence score, and
    during ``fit`` the validation metrics against the step (:mod:`metalight.report.plots`).

    Args:
        print_table: print the registry's table metrics after ``validate`` / ``test`` (and its curve metrics
            in one line per validation during ``fit``).
        plots: draw the plots.
    """

    def __init__(self, print_table: bool = True, plots: bool = True):
        self.print_table = print_table
        self.plots = plots
        self.checkpoint: dict[str, Any] | None = None
        self._trained: set[str] | None | bool = False
        self._out: Path | None = None
        self._streamed = 0
        self._stream_broken = False

    # ---- provenance and streaming ------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self.checkpoint = None
        self._trained: set[str] | None | bool = False  # the checkpoint's training questions, once read

    def _start_pass(self, trainer: Trainer) -> None:
        self._out = run_dir(trainer)  # a collective call under DDP: every rank makes it
        self._streamed = 0
        ckpt = trainer.ckpt_path
        if split_of(trainer) and ckpt and self.checkpoint is None:
            header = checkpoint_header(ckpt) if Path(ckpt).is_file() else {}
            self.checkpoint = {
                "path": str(ckpt),
                "global_step": header.get("global_step"),
                "epoch": header.get("epoch"),
            }

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._start_pass(trainer)

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start_pass(trainer)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if not trainer.sanity_checking:
            self._stream(trainer, pl_module, "val")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._stream(trainer, pl_module, "test")

    def _stream(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        """Append the rows answered since the last batch to ``samples/<split>.partial.jsonl`` (rank 0; a
        failed append is warned about once and the answers stay in memory)."""
        answered = pl_module.answered(split) if hasattr(pl_module, "answered") else []
        fresh, self._streamed = answered[self._streamed :], len(answered)
        if not fresh or not trainer.is_global_zero or self._out is None or self._stream_broken:
            return
        path = self._out / "samples" / f"{split}.partial.jsonl"
        try:
            append_lines(path, [json_line(s.to_json()) for s in fresh])
        except OSError as err:
            self._stream_broken = True
            log.warning(
                "cannot append answers to %s (%s): they are kept in memory and written (or rescued) at "
                "the end of the pass",
                path,
                err.strerror or err,
            )

    # ---- reports -----------------------------------------------------------------------------------------
    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._write(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "test")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        """A ``validate`` / ``test`` stopped by SIGTERM / SIGINT: write the rows answered so far and their
        report, marked partial, and say where in a note on the exception."""
        split = split_of(trainer)
        signal_name = stop_signal(exception)
        if split is None or signal_name is None or not trainer.is_global_zero or self._out is None:
            return
        outcome = pl_module.evaluation_so_far(split) if hasattr(pl_module, "evaluation_so_far") else None
        if outcome is None:
            exception.add_note("before any row was answered: nothing to report")
            return
        rows = len(trainer.datamodule.records(split)) if hasattr(trainer.datamodule, "records") else None
        try:
            report = self._write_outcome(
                trainer, pl_module, outcome, self._out, {"partial": True, "stopped_by": signal_name}
            )
        except Exception as err:
            exception.add_note(f"the partial report could not be written: {err}")
            return
        answered = f"{report['n']} of {rows}" if rows is not None else f"{report['n']}"
        exception.add_note(
            f"after {answered} rows: their answers are in {self._out / 'samples' / f'{split}.jsonl'} "
            f"and {self._out / 'report.json'} (marked partial); re-run the same command for a "
            f"complete report"
        )

    def build_report(
        self, trainer: Trainer, pl_module: LightningModule, outcome, out: Path
    ) -> dict[str, Any]:
        """Metrics plus the settings that change them."""
        datamodule = trainer.datamodule
        dataset = (
            datamodule.describe_name() if hasattr(datamodule, "describe_name") else type(datamodule).__name__
        )
        metrics = {key: outcome.metrics.get(key, math.nan) for key in metric_names("report")}
        metrics["n"] = int(metrics["n"])
        extra = {k: v for k, v in outcome.metrics.items() if k not in metrics}
        rows = datamodule.split_summary(outcome.split) if hasattr(datamodule, "split_summary") else {}
        provenance = {"checkpoint": self.checkpoint} if self.checkpoint and split_of(trainer) else {}
        return {
            **metrics,
            **extra,
            "split": outcome.split,
            "step": outcome.step,
            "epoch": outcome.epoch,
            "dataset": dataset,
            "experiment": out.parent.name,
            **provenance,
            **pl_module.report_settings(),
            **getattr(outcome, "details", {}),
            **rows,
        }

    def _write(self, trainer: Trainer, pl_module: LightningModule, split: str) -> None:
        outcome = getattr(pl_module, "eval_outcomes", {}).pop(split, None)
        out = self._out or run_dir(trainer)
        if outcome is None or not trainer.is_global_zero:
            return
        report = self._write_outcome(trainer, pl_module, outcome, out)
        if self.plots:
            self._plot(trainer, out, report, [s.to_json() for s in outcome.samples])
        if not self.print_table:
            return
        if trainer.state.fn == "fit":
            read = f" of {report['rows_read']} read" if "rows_read" in report else ""
            print(
                f"[{split} step {outcome.step}] n={report['n']}{read}  "
                + "  ".join(f"{k}={report[k]:.3f}" for k in metric_names("report", "curve")),
                flush=True,
            )
        else:
            sources = ""
            if report.get("confidence_sources"):
                from metalight.report.tables import sources_table

                sources = (
                    f"\nconfidence sources (scored against the direct answers):\n{sources_table(report)}\n"
                )
            print(
                f"\n{report['dataset']} · {split} · {report['model']}\n{format_table(report)}\n{sources}"
                f"{rows_line(report)}\nreport: {out / 'report.json'}",
                flush=True,
            )

    def _write_outcome(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outcome,
        out: Path,
        marks: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Write the samples, then the report (the answers are the expensive part: they go first), into
        ``out`` or, when that fails, a rescue directory (``WriteFailed`` then says where); returns the
        report."""
        if self.checkpoint and split_of(trainer):  # the weights measured are the checkpoint's
            outcome.step = self.checkpoint.get("global_step") or outcome.step
            outcome.epoch = self.checkpoint.get("epoch") or outcome.epoch
            self._count_overlap(outcome.samples)
        samples = [s.to_json() for s in outcome.samples]
        built: list[dict[str, Any]] = []

        def report() -> dict[str, Any]:  # built after the samples are on disk: building it can still fail
            if not built:
                built.append({**self.build_report(trainer, pl_module, outcome, out), **(marks or {})})
                warn_counts(built[0])
            return built[0]

        split, step = outcome.split, outcome.step
        files = {
            f"samples/{split}_step{step}.jsonl": lambda p: atomic_write_jsonl(p, samples),
            f"samples/{split}.jsonl": lambda p: atomic_write_jsonl(p, samples),
            "report.json": lambda p: write_report(p.parent, report(), history=f"{split}_step{step}"),
        }
        write_or_rescue(
            files,
            out,
            f"{out.parent.name}-{out.name}-{split}-step{step}",
            f"the {len(samples)} answers and the report",
        )
        (out / "samples" / f"{split}.partial.jsonl").unlink(missing_ok=True)
        return report()

    def _count_overlap(self, samples) -> None:
        """``checkpoint.train_overlap_rows``: evaluated rows whose question was in the checkpoint's training
        split."""
        if self._trained is False:
            path = self.checkpoint["path"]
            self._trained = trained_questions(path) if Path(path).is_file() else None
        if self._trained is not None:
            self.checkpoint["train_overlap_rows"] = sum(s.question in self._trained for s in samples)

    def _plot(
        self, trainer: Trainer, out: Path, report: dict[str, Any], samples: list[dict[str, Any]]
    ) -> None:
        from metalight.report.plots import report_label, run_figures, save_png

        split = report["split"]
        history = None
        if trainer.state.fn == "fit" and split == "val":
            history = [json.loads(p.read_text()) for p in (out / "reports").glob("val_step*.json")]
        for name, figure in run_figures(samples, history, report_label(report, split)).items():
            try:
                save_png(figure, out / "plots" / f"{split}_{name}.png")
            except OSError as err:  # derived from the samples: redraw later with python -m metalight.report
                log.warning(
                    "plot %s not written (%s)", out / "plots" / f"{split}_{name}.png", err.strerror or err
                )
            for logger in trainer.loggers:
                experiment = getattr(logger, "experiment", None)
                if hasattr(experiment, "add_figure"):
                    experiment.add_figure(
                        f"{split}/plots/{name}", figure, global_step=report["step"], close=False
                    )


def stop_signal(exception: BaseException) -> str | None:
    """``SIGTERM`` / ``SIGINT`` when ``exception`` is a run stopped by that signal (Lightning's
    ``SIGTERMException``, Ctrl-C, or an API wait interrupted), else ``None``."""
    if isinstance(exception, SIGTERMException):
        return "SIGTERM"
    if isinstance(exception, KeyboardInterrupt):
        return "SIGINT"
    if isinstance(exception, Interrupted):
        return "SIGTERM" if exception.exit_code == 143 else "SIGINT"
    return None


def warn_counts(report: dict[str, Any]) -> None:
    """Warn (once per report) about counts that say the numbers are probably not what the user meant."""
    overlap = (report.get("checkpoint") or {}).get("train_overlap_rows")
    if overlap:
        log.warning(
            "%d of the %d rows evaluated were in the training split of checkpoint %s: these numbers flatter "
            "the model; measure held-out rows (e.g. data.init_args.eval_split: held_out)",
            overlap,
            report["n"],
            report["checkpoint"]["path"],
        )
    if report.get("control_token_rows"):
        log.warning(
            "%d questions hold the model's control tokens as text (e.g. <|im_start|>): they reach the model "
            "as real control tokens; see control_tokens in the samples",
            report["control_token_rows"],
        )
    if report.get("api_oversized_replies"):
        log.warning(
            "%d API replies were far over max_tokens and were cut (api_oversized_replies)",
            int(report["api_oversized_replies"]),
        )
