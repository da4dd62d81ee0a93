"""Calibration of a confidence P(correct) (e.g. P(yes) to "do you know?"): ECE and Brier score."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_calibration_error

from metalight.metrics._inputs import ScoredRowsMetric, scored_rows, warn


def _nan(device: torch.device) -> Tensor:
    return torch.tensor(float("nan"), dtype=torch.float64, device=device)


def _ece_compute(correct: Tensor, confidence: Tensor, n_bins: int) -> Tensor:
    """L1 calibration error over ``n_bins`` equal-width bins, as torchmetrics' BinaryCalibrationError."""
    if correct.numel() == 0:
        warn("ECE is NaN: no answers with a confidence")
        return _nan(correct.device)
    return binary_calibration_error(confidence.double(), correct.long(), n_bins=n_bins, norm="l1").double()


def expected_calibration_error(
    correct: Tensor, confidence: Tensor, n_bins: int = 15, mask: Tensor | None = None
) -> Tensor:
    """Functional :class:`ExpectedCalibrationError`."""
    return _ece_compute(*scored_rows(correct, confidence, mask), n_bins=n_bins)


class ExpectedCalibrationError(ScoredRowsMetric):
    """Expected calibration error of a confidence that the answer is correct.

    ECE = Σ_b (n_b / N) · |acc_b − conf_b| over ``n_bins`` equal-width bins of [0, 1]
    (bin b holds b/n ≤ p < (b+1)/n; p = 1 sits in a bin of its own), where acc_b is the
    fraction correct and conf_b the mean confidence in the bin: torchmetrics
    ``BinaryCalibrationError(n_bins, norm="l1")`` with preds = confidence, target = correct.
    Range [0, 1]; 0 = calibrated.

    ``update(correct, confidence, mask=None)``: ``correct`` bool/0-1 [N], ``confidence`` float
    [N] in [0, 1]; NaN confidence drops the row. ``compute()`` returns a float64 scalar,
    NaN with a warning when no row was scored.

    Example (bin of 0.9: acc 1/2, weight 1/2 → 0.2; bin of 0.25: acc 0, weight 1/2 → 0.125):

    >>> import torch
    >>> metric = ExpectedCalibrationError()
    >>> metric.update(torch.tensor([1, 0, 0, 0]), torch.tensor([0.9, 0.9, 0.25, 0.25]))
    >>> round(metric.compute().item(), 4)
    0.325
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, n_bins: int = 15, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(n_bins, int) or n_bins < 1:
            raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
        self.n_bins = n_bins

    def compute(self) -> Tensor:
        """ECE over everything seen since the last reset."""
        return _ece_compute(*self.rows(), self.n_bins)


def _brier_update(correct: Tensor, confidence: Tensor) -> tuple[Tensor, Tensor]:
    """(Σ (p − correct)², number of rows) in float64 / int64."""
    sse = (confidence.double() - correct.double()).square().sum()
    return sse, torch.tensor(correct.numel(), device=correct.device)


def _brier_compute(sum_squared_error: Tensor, total: Tensor) -> Tensor:
    """Mean squared error of the confidence; NaN with a warning over no rows."""
    if total == 0:
        warn("Brier score is NaN: no answers with a confidence")
        return _nan(sum_squared_error.device)
    return sum_squared_error.double() / total


def brier_score(correct: Tensor, confidence: Tensor, mask: Tensor | None = None) -> Tensor:
    """Functional :class:`BrierScore`."""
    return _brier_compute(*_brier_update(*scored_rows(correct, confidence, mask)))


class BrierScore(Metric):
    """Brier score of a confidence that the answer is correct: mean (p − correct)².

    Range [0, 1]; 0 = perfect, 0.25 = a constant 0.5. ``update(correct, confidence, mask=None)``
    as :class:`ExpectedCalibrationError`; ``compute()`` returns a float64 scalar (NaN, with a
    warning, when no row was scored).

    Example ((0.1² + 0.9² + 0.25² + 0.25²) / 4 = 0.945 / 4):

    >>> import torch
    >>> metric = BrierScore()
    >>> metric.update(torch.tensor([1, 0, 0, 0]), torch.tensor([0.9, 0.9, 0.25, 0.25]))
    >>> round(metric.compute().item(), 5)
    0.23625
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        zero = torch.tensor(0.0, dtype=torch.float64)
        self.add_state("sum_squared_error", default=zero, dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, correct: Tensor, confidence: Tensor, mask: Tensor | None = None) -> None:
        """Add the squared errors of one batch."""
        sse, total = _brier_update(*scored_rows(correct, confidence, mask))
        self.sum_squared_error += sse
        self.total += total

    def compute(self) -> Tensor:
        """Brier score over everything seen since the last reset."""
        return _brier_compute(self.sum_squared_error, self.total)
