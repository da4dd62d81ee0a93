"""Metrics of any confidence score (P(yes), p(True), sequence probability, entropy, ...) used to decide
which answers to trust: ranking quality, the yes-report it implies, calibration, and threshold sweeps.

A *confidence source* gives each answer a score (higher = more confident; NaN = no score) and possibly a
binary yes-report ("I know" / "answered"). :func:`confidence_metrics` scores one source against answer
correctness; :func:`threshold_table` and :func:`select_threshold` turn a score into a yes-report by
``score >= threshold`` (ESMA's evaluate_qa_threshold, swept instead of fixed).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, get_args

import torch
from torch import Tensor
from torchmetrics import Metric

from metalight.metrics._inputs import as_binary, cat_state, check_rows, keep_mask
from metalight.metrics.alignment import _alignment_compute
from metalight.metrics.calibration import _brier_compute, _brier_update, _ece_compute
from metalight.metrics.prr import _prr_compute
from metalight.metrics.type2 import Correction, _check_correction, _dprime_type2_compute, _type2_auroc_compute

CONFIDENCE_METRIC_NAMES = ("n", "scored_rate", "accuracy", "auroc_type2", "prr", "dprime_type2", "hit_rate",
                           "false_alarm_rate", "coverage", "selective_accuracy", "raw_alignment", "ece", "brier")
Criterion = Literal["alignment", "youden", "dprime"]


def _nan(device) -> Tensor:
    return torch.tensor(float("nan"), dtype=torch.float64, device=device)


def _report_metrics(correct: Tensor, report: Tensor, correction: Correction) -> dict[str, Tensor]:
    """d'type2, rates, coverage (= yes ratio), selective accuracy P(correct | yes), raw alignment."""
    table = torch.bincount(2 * correct.long() + report.long(), minlength=4).view(2, 2)
    alignment = _alignment_compute(table)
    out = _dprime_type2_compute(table[1, 1], table[1].sum(), table[0, 1], table[0].sum(), correction)
    out.update(coverage=alignment["yes_ratio"], selective_accuracy=1 - alignment["yes_failure_rate"],
               raw_alignment=alignment["raw_alignment"])
    return out


def _confidence_compute(correct: Tensor, score: Tensor, report: Optional[Tensor], probability: bool,
                        correction: Correction, ece_bins: int) -> dict[str, Tensor]:
    """Every value of :data:`CONFIDENCE_METRIC_NAMES` from validated rows (NaN where not applicable)."""
    device, n = correct.device, correct.numel()
    values = {name: _nan(device) for name in CONFIDENCE_METRIC_NAMES}
    values["n"] = torch.tensor(float(n), dtype=torch.float64, device=device)
    if n == 0:
        return values
    scored = ~torch.isnan(score)
    values["scored_rate"] = scored.double().mean()
    values["accuracy"] = correct.double().mean()
    if scored.any():
        c, s = correct[scored], score[scored].double()
        values["auroc_type2"] = _type2_auroc_compute(c, s)
        values["prr"] = _prr_compute(s, c.double())
        if probability:
            values["ece"] = _ece_compute(c, s, ece_bins)
            values["brier"] = _brier_compute(*_brier_update(c, s))
    if report is not None:
        values.update(_report_metrics(correct, report, correction))
    return values


def _validate(correct: Tensor, score: Tensor, report: Optional[Tensor], mask: Optional[Tensor]):
    n = check_rows(correct=correct, score=score, report=report)
    if not score.is_floating_point():
        raise ValueError(f"`score` must be a float tensor, got {score.dtype}")
    keep = keep_mask(mask, n, correct.device)
    correct = as_binary("correct", correct)[keep]
    report = as_binary("report", report)[keep] if report is not None else None
    return correct, score[keep], report


def confidence_metrics(correct: Tensor, score: Tensor, report: Optional[Tensor] = None, probability: bool = False,
                       correction: Correction = "clip", ece_bins: int = 15,
                       mask: Optional[Tensor] = None) -> dict[str, Tensor]:
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

    def __init__(self, probability: bool = False, correction: Correction = "clip", ece_bins: int = 15,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_correction(correction)
        self.probability, self.correction, self.ece_bins = probability, correction, ece_bins
        for name in ("correct", "score", "report"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, correct: Tensor, score: Tensor, report: Optional[Tensor] = None,
               mask: Optional[Tensor] = None) -> None:
        """Append one batch (a missing report is stored as NaN)."""
        correct, score, report = _validate(correct, score, report, mask)
        self.correct.append(correct.to(self.dtype))
        self.score.append(score.to(self.dtype))
        self.report.append(report.to(self.dtype) if report is not None
                           else torch.full_like(score, float("nan"), dtype=self.dtype))

    def compute(self) -> dict[str, Tensor]:
        """Every value over everything seen since the last reset."""
        report = cat_state(self.report)
        has_report = bool((~torch.isnan(report)).any()) if report.numel() else False
        return _confidence_compute(cat_state(self.correct).bool(), cat_state(self.score),
                                   report.nan_to_num(0.0).bool() if has_report else None,
                                   self.probability, self.correction, self.ece_bins)


# ---- thresholds --------------------------------------------------------------------------------------------
def _counts_at(correct: Tensor, score: Tensor, thresholds: Tensor) -> tuple[Tensor, Tensor]:
    """(#correct, #incorrect) answers with score >= t, for each threshold t (unscored answers never count)."""
    scored = ~torch.isnan(score)
    s, c = score[scored].double(), correct[scored]
    order = torch.argsort(s)
    s, c = s[order], c[order].double()
    # Answers at sorted index >= i have score >= t when i = first index with s[i] >= t.
    first = torch.searchsorted(s, thresholds.double(), side="left")
    tail_correct = torch.cat([c.flip(0).cumsum(0).flip(0), torch.zeros(1, dtype=torch.float64)])
    tail_all = torch.arange(len(s), -1, -1, dtype=torch.float64)
    yes_correct = tail_correct[first]
    return yes_correct, tail_all[first] - yes_correct


def _operating_points(correct: Tensor, score: Tensor, thresholds: Tensor,
                      correction: Correction, with_dprime: bool = True) -> dict[str, Tensor]:
    """Per threshold: coverage, selective accuracy, hit / false-alarm rate, raw alignment, Youden J, d'."""
    correct = as_binary("correct", correct)
    n, n_correct = correct.numel(), float(correct.sum())
    n_incorrect = n - n_correct
    yc, yi = _counts_at(correct, score, thresholds)
    answered = yc + yi
    out = {
        "threshold": thresholds.double(),
        "coverage": answered / n,
        "selective_accuracy": torch.where(answered > 0, yc / answered.clamp(min=1), float("nan")),
        "hit_rate": yc / n_correct if n_correct else torch.full_like(yc, float("nan")),
        "false_alarm_rate": yi / n_incorrect if n_incorrect else torch.full_like(yi, float("nan")),
        "raw_alignment": (yc + (n_incorrect - yi)) / n,
    }
    out["youden"] = out["hit_rate"] - out["false_alarm_rate"]
    if with_dprime:
        nc, ni = torch.tensor(n_correct), torch.tensor(n_incorrect)
        out["dprime_type2"] = torch.stack([
            _dprime_type2_compute(a, nc, b, ni, correction)["dprime_type2"] for a, b in zip(yc, yi)])
    return out


def threshold_table(correct: Tensor, score: Tensor, thresholds: Tensor,
                    correction: Correction = "clip") -> list[dict[str, float]]:
    """One row per threshold t (report yes iff score >= t): ``threshold``, ``coverage``,
    ``selective_accuracy`` (accuracy if answered), ``dprime_type2``, ``hit_rate``, ``false_alarm_rate``,
    ``raw_alignment``, ``youden`` (H − F). Unscored (NaN) answers are never reported yes."""
    _check_correction(correction)
    points = _operating_points(correct, score, thresholds, correction)
    return [{k: float(v[i]) for k, v in points.items()} for i in range(len(thresholds))]


def quantile_thresholds(score: Tensor, points: int = 21) -> Tensor:
    """Thresholds at evenly spaced quantiles of the scored values (coverage ≈ 100% .. 0% in equal steps),
    deduplicated; scale-free, so one grid suits probabilities, log-probabilities and entropies alike."""
    scored = score[~torch.isnan(score)].double()
    if scored.numel() == 0:
        return torch.empty(0, dtype=torch.float64)
    return torch.unique(torch.quantile(scored, torch.linspace(0, 1, points, dtype=torch.float64)))


def select_threshold(correct: Tensor, score: Tensor, criterion: Criterion = "alignment",
                     correction: Correction = "clip") -> dict[str, float]:
    """The operating point that maximises ``criterion`` over every distinct score (and "never yes").

    ``alignment``: raw alignment, the share of answers whose yes/no matches correctness (ESMA);
    ``youden``: H − F (balanced, ignores the base rate); ``dprime``: d'type2 (beware: with the clip
    correction an extreme threshold with H or F at 0 scores high). Ties go to the lowest threshold (the
    highest coverage). Returns the chosen row of :func:`threshold_table` plus ``criterion``.
    """
    if criterion not in get_args(Criterion):
        raise ValueError(f"criterion must be one of {get_args(Criterion)}, got {criterion!r}")
    scored = score[~torch.isnan(score)].double()
    if scored.numel() == 0:
        raise ValueError("cannot choose a threshold: no answer has a score")
    candidates = torch.cat([torch.unique(scored), torch.tensor([float("inf")], dtype=torch.float64)])
    points = _operating_points(correct, score, candidates, correction, with_dprime=criterion == "dprime")
    key = {"alignment": "raw_alignment", "youden": "youden", "dprime": "dprime_type2"}[criterion]
    values = points[key].nan_to_num(float("-inf"))
    best = int(torch.nonzero(values == values.max())[0])  # candidates ascend: first = lowest threshold
    row = threshold_table(correct, score, candidates[best:best + 1], correction)[0]
    return {**row, "criterion": criterion}
