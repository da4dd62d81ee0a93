"""Prediction-rejection ratio (PRR): how much of the oracle's gain a confidence score achieves when the
least confident answers are rejected first (LM-Polygraph's ``prr``, normalised).

Definition (LM-Polygraph ``ue_metrics/pred_rej_area.py`` and the normalisation in ``utils/manager.py``):
answers are sorted from most to least confident; after rejecting the ``k`` least confident of ``N``
(k = 0 .. K-1, K = ⌊max_rejection·N⌋) the *retained* answers have a mean quality q̄_k. The area is
AUC = (1/K) Σ_k q̄_k. It is computed for the score, for the oracle (sorted by quality itself) and for a
random order, and PRR = (AUC − AUC_random) / (AUC_oracle − AUC_random): 0 = random, 1 = oracle.

Two exact forms replace LM-Polygraph's sampling and its arbitrary tie order:

* **Random.** LM-Polygraph averages 1,000 seeded shuffles. Under a uniformly random order the retained set
  after k rejections is a uniformly random subset of size N−k, whose expected mean quality is the overall
  mean q̄; so E[AUC_random] = q̄ exactly, which is used here (``tests/metrics/test_prr.py`` checks it over all
  permutations and against the 1,000-shuffle estimate).
* **Ties.** ``np.argsort`` breaks ties in confidence by position, so a 0/1 score (a yes/no report) gets a PRR
  that depends on the row order. Here tied answers contribute their group's mean quality, which is the
  expectation over all orders of the tied answers; without ties this equals LM-Polygraph's value.

Quality is min–max normalised in LM-Polygraph; PRR is unchanged by any affine change of quality, so it is
used as given (e.g. 0/1 correctness).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from metalight.metrics._inputs import cat_state, check_rows, keep_mask, warn


def _scored(confidence: Tensor, quality: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Float64 (confidence, quality) of the kept rows whose confidence and quality are not NaN."""
    n = check_rows(confidence=confidence, quality=quality)
    if not confidence.is_floating_point():
        raise ValueError(f"`confidence` must be a float tensor, got {confidence.dtype}")
    confidence, quality = confidence.double(), quality.double()
    keep = keep_mask(mask, n, confidence.device) & ~torch.isnan(confidence) & ~torch.isnan(quality)
    return confidence[keep], quality[keep]


def _tie_mean(confidence: Tensor, quality: Tensor) -> Tensor:
    """Each row's quality replaced by the mean quality of the rows with the same confidence."""
    _, group, counts = torch.unique(confidence, return_inverse=True, return_counts=True)
    sums = torch.zeros(len(counts), dtype=quality.dtype, device=quality.device).index_add_(0, group, quality)
    return (sums / counts)[group]


def _retained_means(sorted_quality: Tensor) -> Tensor:
    """Mean quality of the first m rows for m = N, N−1, ..., 1 (i.e. after rejecting k = 0, 1, ..., N−1)."""
    n = sorted_quality.numel()
    sizes = torch.arange(1, n + 1, dtype=sorted_quality.dtype, device=sorted_quality.device)
    return (sorted_quality.cumsum(0) / sizes).flip(0)


def _rejection_curve(confidence: Tensor, quality: Tensor) -> tuple[Tensor, Tensor]:
    """(rejected fraction k/N, expected mean quality of the retained answers) for k = 0 .. N−1."""
    order = torch.argsort(confidence, descending=True, stable=True)
    retained = _retained_means(_tie_mean(confidence, quality)[order])
    n = confidence.numel()
    return torch.arange(n, dtype=torch.float64, device=confidence.device) / n, retained


def _prr_compute(confidence: Tensor, quality: Tensor, max_rejection: float = 1.0) -> Tensor:
    """Normalised PRR of already-filtered float64 rows (see the module docstring)."""
    n = confidence.numel()
    nan = torch.tensor(float("nan"), dtype=torch.float64, device=confidence.device)
    if n == 0:
        warn("PRR is NaN: no answers with a confidence")
        return nan
    k = max(int(max_rejection * n), 1)
    _, curve = _rejection_curve(confidence, quality)
    oracle = _retained_means(torch.sort(quality, descending=True).values)
    auc, auc_oracle, auc_random = curve[:k].mean(), oracle[:k].mean(), quality.mean()
    if torch.isclose(auc_oracle, auc_random, rtol=0, atol=1e-12):
        warn("PRR is NaN: every answer has the same quality, so no order beats a random one")
        return nan
    return (auc - auc_random) / (auc_oracle - auc_random)


def _check_max_rejection(max_rejection: float) -> None:
    if not 0 < max_rejection <= 1:
        raise ValueError(f"max_rejection must be in (0, 1], got {max_rejection!r}")


def prediction_rejection_ratio(
    confidence: Tensor, quality: Tensor, max_rejection: float = 1.0, mask: Tensor | None = None
) -> Tensor:
    """Functional :class:`PredictionRejectionRatio`."""
    _check_max_rejection(max_rejection)
    return _prr_compute(*_scored(confidence, quality, mask), max_rejection=max_rejection)


def rejection_curve(confidence: Tensor, quality: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The prediction-rejection curve behind PRR: rejected fraction (0 .. (N−1)/N) and the mean quality of
    the answers kept, least confident rejected first (ties averaged). Both float64 of shape [N]."""
    return _rejection_curve(*_scored(confidence, quality, mask))


class PredictionRejectionRatio(Metric):
    """Prediction-rejection ratio of a confidence score against answer quality (LM-Polygraph ``prr``).

    PRR = (AUC − AUC_random) / (AUC_oracle − AUC_random), where AUC averages the mean quality of the
    answers kept after rejecting the k least confident, k = 0 .. ⌊max_rejection·N⌋ − 1; the oracle rejects
    the lowest-quality answers first and AUC_random = mean quality (the exact expectation of a random
    order). 0 = no better than random rejection, 1 = oracle, negative = worse than random. Tied
    confidences count at their group's mean quality (the expectation over tie orders).

    ``update(confidence, quality, mask=None)``: ``confidence`` float [N], higher = more confident (any real
    score; NaN drops the row); ``quality`` float or 0/1 [N], higher = better (e.g. correctness);
    ``mask`` (bool [N], True = keep) drops padding rows. ``compute()`` returns a float64 scalar; NaN with a
    warning when no row is scored or all qualities are equal.

    Args:
        max_rejection: largest fraction of answers rejected (LM-Polygraph ``prr_<r>``; 1.0 = ``prr``).

    Example (the two correct answers are the most confident: PRR = 1; the reverse order gives −1):

    >>> import torch
    >>> metric = PredictionRejectionRatio()
    >>> metric.update(torch.tensor([0.9, 0.8, 0.3, 0.1]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    >>> metric.compute().item()
    1.0
    >>> round(prediction_rejection_ratio(torch.tensor([0.1, 0.2, 0.8, 0.9]),
    ...                                  torch.tensor([1.0, 1.0, 0.0, 0.0])).item(), 4)
    -1.0
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, max_rejection: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_max_rejection(max_rejection)
        self.max_rejection = max_rejection
        self.add_state("confidence", default=[], dist_reduce_fx="cat")
        self.add_state("quality", default=[], dist_reduce_fx="cat")

    def update(self, confidence: Tensor, quality: Tensor, mask: Tensor | None = None) -> None:
        """Append the scored rows of one batch."""
        confidence, quality = _scored(confidence, quality, mask)
        self.confidence.append(confidence.to(self.dtype))
        self.quality.append(quality.to(self.dtype))

    def compute(self) -> Tensor:
        """PRR over everything seen since the last reset."""
        return _prr_compute(
            cat_state(self.confidence).double(), cat_state(self.quality).double(), self.max_rejection
        )
