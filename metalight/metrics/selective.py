"""Metrics of any confidence score (P(yes), p(True), sequence probability, entropy, ...) used to decide
which answers to trust: ranking quality, the yes-report it implies, calibration, and threshold sweeps.

A *confidence source* gives each answer a score (higher = more confident; NaN = no score) and possibly a
binary yes-report ("I know" / "answered"). :func:`confidence_metrics` scores one source against answer
correctness; :func:`threshold_table` and :func:`select_threshold` turn a score into a yes-report by
``score >= threshold`` (ESMA's evaluate_qa_threshold, swept instead of fixed).
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from torch import Tensor
from torchmetrics import Metric

from metalight.metrics import registry
from metalight.metrics._inputs import as_binary, cat_state, check_rows, keep_mask
from metalight.metrics.type2 import Correction, _check_correction

# n and accuracy over every answer, then the registry's per-source metrics
CONFIDENCE_METRIC_NAMES = ("n", "accuracy", *registry.metric_names("source"))
Criterion = Literal["alignment", "youden", "dprime"]
# what each criterion maximises: a registry metric, or Youden's J = H − F
CRITERIA = {"alignment": "raw_alignment", "youden": "youden", "dprime": "dprime_type2"}


def _confidence_compute(
    correct: Tensor,
    score: Tensor,
    report: Tensor | None,
    probability: bool,
    correction: Correction,
    ece_bins: int,
) -> dict[str, Tensor]:
    """Every value of :data:`CONFIDENCE_METRIC_NAMES` from validated rows, through the registry (NaN where not
    applicable: no report, not a probability, no rows)."""
    if correct.numel() == 0:
        values = {name: torch.tensor(float("nan"), dtype=torch.float64) for name in CONFIDENCE_METRIC_NAMES}
        return {**values, "n": torch.tensor(0.0, dtype=torch.float64)}
    columns = {"correct": correct, "said_yes": report, "confidence": score.double()}
    return registry.compute_values(
        columns,
        CONFIDENCE_METRIC_NAMES,
        {"correction": correction, "n_bins": ece_bins},
        probability=probability,
    )


def _validate(correct: Tensor, score: Tensor, report: Tensor | None, mask: Tensor | None):
    n = check_rows(correct=correct, score=score, report=report)
    if not score.is_floating_point():
        raise ValueError(f"`score` must be a float tensor, got {score.dtype}")
    keep = keep_mask(mask, n, correct.device)
    correct = as_binary("correct", correct)[keep]
    report = as_binary("report", report)[keep] if report is not None else None
    return correct, score[keep], report


def confidence_metrics(
    correct: Tensor,
    score: Tensor,
    report: Tensor | None = None,
    probability: bool = False,
    correction: Correction = "clip",
    ece_bins: int = 15,
    mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """Functional :class:`ConfidenceMetrics`."""
    _check_correction(correction)
    return _confidence_compute(*_validate(correct, score, report, mask), probability, correction, ece_bins)


class ConfidenceMetrics(Metric):
    """How well one confidence source predicts answer correctness.

    ``update(correct, score, report=None, mask=None)``, all [N]: ``correct`` bool/0-1; ``score`` float,
    higher = more confident, NaN = no score for this answer; ``report`` bool/0-1 yes-report of the source
    ("I know", "answered", P > 0.5), or ``None`` for a source without one; ``mask`` (True = keep) drops
    padding rows. ``compute()`` returns float64 scalars under :data:`CONFIDENCE_METRIC_NAMES`:

    - ``n``; ``scored_rate`` = share of answers with a score; ``accuracy`` over all answers;
    - over scored answers: ``auroc_type2`` (:class:`~metalight.metrics.type2.Type2AUROC`) and ``prr``
      (:class:`~metalight.metrics.prr.PredictionRejectionRatio` with quality = correctness); with
      ``probability=True`` (the score is meant as P(correct)) also ``ece`` and ``brier``;
    - from the report, over all answers: ``dprime_type2``, ``hit_rate``, ``false_alarm_rate``,
      ``coverage`` (share reported yes), ``selective_accuracy`` = P(correct | yes) ("accuracy if
      answered"), ``raw_alignment``.

    Values that do not apply (no report, not a probability) or cannot be estimated are NaN.

    Args:
        probability: the score is a probability that the answer is correct (ECE and Brier apply).
        correction: d'type2 rates of 0 or 1: ``clip`` (ESMA) or ``loglinear``.
        ece_bins: equal-width bins for ECE.

    Example (the yes-report covers 3 of 5 answers, 2 of them correct):

    >>> import torch
    >>> metric = ConfidenceMetrics(probability=True)
    >>> correct = torch.tensor([1, 1, 0, 0, 1])
    >>> score = torch.tensor([0.9, 0.8, 0.7, 0.2, float("nan")])
    >>> metric.update(correct, score, report=score > 0.5)
    >>> result = metric.compute()
    >>> result["scored_rate"].item(), result["auroc_type2"].item(), result["coverage"].item()
    (0.8, 1.0, 0.6)
    >>> round(result["selective_accuracy"].item(), 4)
    0.6667
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    def __init__(
        self, probability: bool = False, correction: Correction = "clip", ece_bins: int = 15, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        _check_correction(correction)
        self.probability, self.correction, self.ece_bins = probability, correction, ece_bins
        for name in ("correct", "score", "report"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(
        self, correct: Tensor, score: Tensor, report: Tensor | None = None, mask: Tensor | None = None
    ) -> None:
        """Append one batch (a missing report is stored as NaN)."""
        correct, score, report = _validate(correct, score, report, mask)
        self.correct.append(correct.to(self.dtype))
        self.score.append(score.to(self.dtype))
        self.report.append(
            report.to(self.dtype)
            if report is not None
            else torch.full_like(score, float("nan"), dtype=self.dtype)
        )

    def compute(self) -> dict[str, Tensor]:
        """Every value over everything seen since the last reset."""
        report = cat_state(self.report)
        has_report = bool((~torch.isnan(report)).any()) if report.numel() else False
        return _confidence_compute(
            cat_state(self.correct).bool(),
            cat_state(self.score),
            report.nan_to_num(0.0).bool() if has_report else None,
            self.probability,
            self.correction,
            self.ece_bins,
        )


# ---- thresholds --------------------------------------------------------------------------------------------
def _operating_point(
    correct: Tensor, score: Tensor, threshold: float, correction: Correction, names: tuple[str, ...]
) -> dict[str, float]:
    """The registry's ``names`` (and ``youden`` = H − F) when the yes-report is score >= ``threshold``
    (unscored answers are never reported yes)."""
    report = torch.nan_to_num(score.double(), nan=float("-inf")) >= threshold
    values = registry.compute_values(
        {"correct": correct, "said_yes": report},
        [n for n in names if n != "youden"],
        {"correction": correction},
    )
    out = {"threshold": float(threshold), **{k: float(v) for k, v in values.items()}}
    if "youden" in names:
        out["youden"] = out["hit_rate"] - out["false_alarm_rate"]
    return out


THRESHOLD_COLUMNS = (*registry.metric_names("threshold"), "hit_rate", "false_alarm_rate", "youden")


def threshold_table(
    correct: Tensor, score: Tensor, thresholds: Tensor, correction: Correction = "clip"
) -> list[dict[str, float]]:
    """One row per threshold t (report yes iff score >= t): ``threshold``, the registry's threshold metrics
    (``dprime_type2``, ``coverage``, ``selective_accuracy`` = accuracy if answered, ``raw_alignment``),
    ``hit_rate``, ``false_alarm_rate`` and ``youden`` (H − F). Unscored (NaN) answers are never reported
    yes."""
    _check_correction(correction)
    correct = as_binary("correct", correct)
    return [_operating_point(correct, score, float(t), correction, THRESHOLD_COLUMNS) for t in thresholds]


def quantile_thresholds(score: Tensor, points: int = 21) -> Tensor:
    """Thresholds at evenly spaced quantiles of the scored values (coverage ≈ 100% .. 0% in equal steps),
    deduplicated; scale-free, so one grid suits probabilities, log-probabilities and entropies alike."""
    scored = score[~torch.isnan(score)].double()
    if scored.numel() == 0:
        return torch.empty(0, dtype=torch.float64)
    return torch.unique(torch.quantile(scored, torch.linspace(0, 1, points, dtype=torch.float64)))


def select_threshold(
    correct: Tensor, score: Tensor, criterion: Criterion = "alignment", correction: Correction = "clip"
) -> dict[str, float]:
    """The operating point that maximises ``criterion`` over every distinct score (and "never yes").

    ``alignment``: raw alignment, the share of answers whose yes/no matches correctness (ESMA);
    ``youden``: H − F (balanced, ignores the base rate); ``dprime``: d'type2 (beware: with the clip
    correction an extreme threshold with H or F at 0 scores high). Ties go to the lowest threshold (the
    highest coverage). Returns the chosen row of :func:`threshold_table` plus ``criterion``.
    """
    if criterion not in get_args(Criterion):
        raise ValueError(f"criterion must be one of {get_args(Criterion)}, got {criterion!r}")
    _check_correction(correction)
    scored = score[~torch.isnan(score)].double()
    if scored.numel() == 0:
        raise ValueError("cannot choose a threshold: no answer has a score")
    correct = as_binary("correct", correct)
    key = CRITERIA[criterion]
    needs = ("hit_rate", "false_alarm_rate", "youden") if key == "youden" else (key,)
    candidates = [
        *torch.unique(scored).tolist(),
        float("inf"),
    ]  # ascending: the first best = lowest threshold
    values = torch.tensor([_operating_point(correct, score, t, correction, needs)[key] for t in candidates])
    values = values.nan_to_num(float("-inf"))
    best = int(torch.nonzero(values == values.max())[0])
    row = threshold_table(correct, score, torch.tensor([candidates[best]], dtype=torch.float64), correction)[
        0
    ]
    return {**row, "criterion": criterion}
