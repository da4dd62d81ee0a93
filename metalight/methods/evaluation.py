"""What a validation / test pass produces, and the dual-prompt evaluation a measuring module holds.

Every pass ends in an :class:`EvaluationOutcome` (metrics, per-question samples, report details) that the one
report writer (:class:`metalight.callbacks.report_writer.ReportWriter`) turns into ``report.json`` and
``samples/<split>.jsonl``. :class:`DualPromptEvaluation` is the state of ESMA's measurement protocol across a
pass: per split, the metric collection of the registry (:class:`~metalight.metrics.MetacognitionMetrics`) and
the kept samples; :class:`~metalight.methods.base.DualPromptModule` holds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.distributed as dist
from torch import nn

from metalight.evaluation.dual_prompt import EvalSettings, SampleResult, evaluate_records, results_to_tensors
from metalight.metrics import MetacognitionMetrics
from metalight.models.modes import eval_mode

EVAL_SPLITS = ("val", "test")


@dataclass
class EvaluationOutcome:
    """The result of one evaluation pass over a split: metric values and per-question samples (each with a
    ``to_json``), and report details (e.g. threshold sweeps) that go into ``report.json`` as they are."""

    split: str
    step: int
    epoch: int
    metrics: dict[str, float]
    samples: list[Any] = field(repr=False)
    details: dict[str, Any] = field(default_factory=dict, repr=False)


def gather_objects(items: list[Any]) -> list[Any]:
    """Concatenate a list from every process (identity outside distributed runs)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list[list[Any] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, items)
        return [item for part in parts for item in part]
    return items


def row_counts(samples: Sequence[Any]) -> dict[str, int]:
    """Rows whose inputs or grading deserve a look, for ``report.json``: prompts cut to ``max_input_tokens``
    (``truncated_rows``), answers credited only through a weak alias (``suspect_matches``) and questions
    holding the model's control tokens as text (``control_token_rows``)."""
    return {
        "truncated_rows": sum(bool(getattr(s, "prompt_truncated", False)) for s in samples),
        "suspect_matches": sum(bool(getattr(s, "suspect_match", False)) for s in samples),
        "control_token_rows": sum(bool(getattr(s, "control_tokens", False)) for s in samples),
    }


class DualPromptEvaluation(nn.Module):
    """The dual-prompt protocol across validation / test passes: answers, the registry's metrics, samples.

    ``answer`` asks a model the direct and meta prompts of some records; ``record`` adds a batch's results
    (padding rows left out) to a split's metrics and samples; ``finish`` returns the split's metric values and
    every rank's samples, and resets the split for the next pass; ``so_far`` reads a pass that was stopped.

    Args:
        settings: the evaluation settings (grading, yes/no rule, templates, token budgets).
        dprime_correction: how d'type2 handles hit / false-alarm rates of 0 or 1 (``clip`` or ``loglinear``).
    """

    def __init__(self, settings: EvalSettings, dprime_correction: Literal["clip", "loglinear"] = "clip"):
        super().__init__()
        self.settings = settings.check()
        self.dprime_correction = dprime_correction
        self.metrics = nn.ModuleDict(
            {split: MetacognitionMetrics(dprime_correction=dprime_correction) for split in EVAL_SPLITS}
        )
        self.samples: dict[str, list[Any]] = {split: [] for split in EVAL_SPLITS}

    def answer(self, model, tokenizer, records, synced_gpus: bool = False) -> list[SampleResult]:
        """Dual-prompt results of ``records`` under these settings (the model in eval mode meanwhile)."""
        with eval_mode(model):
            return evaluate_records(model, tokenizer, records, self.settings, synced_gpus=synced_gpus)

    def record(self, split: str, results: Sequence[SampleResult], keep: Sequence[bool]) -> None:
        """Add the kept results of one batch to the split's metrics and samples."""
        device = self.metrics[split].device
        tensors = {k: v.to(device) for k, v in results_to_tensors(results).items()}
        self.metrics[split].update(**tensors, mask=torch.tensor(list(keep), dtype=torch.bool, device=device))
        self.samples[split].extend(r for r, k in zip(results, keep) if k)

    def finish(self, split: str) -> tuple[dict[str, float], list[Any]]:
        """The split's metric values (reduced over ranks) and every rank's samples; the split starts empty
        again."""
        metric = self.metrics[split]
        values = {k: float(v) for k, v in metric.compute().items()}
        metric.reset()
        samples = gather_objects(self.samples[split])
        self.samples[split] = []
        return values, samples

    def so_far(self, split: str) -> tuple[dict[str, float], list[Any]] | None:
        """The metric values and samples of the rows answered so far in a stopped pass (a signal, a failed
        batch), nothing reset; ``None`` when no row was answered or under several processes (no collective is
        entered on the way out of a failed run)."""
        samples = list(self.samples[split])
        if not samples or (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return None
        return {k: float(v) for k, v in self.metrics[split].compute().items()}, samples

    def describe(self, tokenizer=None) -> dict[str, Any]:
        """The settings that change the numbers, for ``report.json``."""
        return {"dprime_correction": self.dprime_correction, **self.settings.describe(tokenizer)}
