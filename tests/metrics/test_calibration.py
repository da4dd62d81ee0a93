import math

import numpy as np
import pytest
import torch
from torchmetrics.classification import BinaryCalibrationError

from metalight.metrics.calibration import (
    BrierScore,
    ExpectedCalibrationError,
    brier_score,
    expected_calibration_error,
)

torch.set_num_threads(1)


def _random_scored(n: int = 400, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    confidence = torch.rand(n, generator=g, dtype=torch.float64)
    correct = torch.rand(n, generator=g, dtype=torch.float64) < confidence**2  # overconfident
    return correct, confidence


def _manual_ece(correct: np.ndarray, confidence: np.ndarray, n_bins: int) -> float:
    """Bins [k/n, (k+1)/n), p = 1 alone; Σ weight · |accuracy − mean confidence|."""
    index = np.minimum(np.floor(confidence * n_bins).astype(int), n_bins)
    total = 0.0
    for b in np.unique(index):
        in_bin = index == b
        total += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return total


@pytest.mark.parametrize("n_bins", [15, 4])
def test_ece_matches_manual_binning(n_bins):
    correct, confidence = _random_scored()
    expected = _manual_ece(correct.numpy(), confidence.numpy(), n_bins)
    assert expected > 0.05  # the data are miscalibrated, so the check has teeth
    computed = expected_calibration_error(correct, confidence, n_bins=n_bins).item()
    assert computed == pytest.approx(expected, abs=1e-12)


def test_ece_class_agrees_with_torchmetrics_binary_calibration_error():
    correct, confidence = _random_scored(seed=1)
    ours, reference = ExpectedCalibrationError(n_bins=15), BinaryCalibrationError(n_bins=15, norm="l1")
    for lo, hi in [(0, 123), (123, 400)]:
        ours.update(correct[lo:hi], confidence[lo:hi].float())
        reference.update(confidence[lo:hi].float(), correct[lo:hi].long())
    assert ours.compute().item() == pytest.approx(reference.compute().item(), abs=1e-6)


def test_ece_is_zero_when_every_bin_is_calibrated():
    correct = torch.tensor([1, 0, 0, 0, 1, 1, 1, 0])
    confidence = torch.tensor([0.25, 0.25, 0.25, 0.25, 0.75, 0.75, 0.75, 0.75])
    assert expected_calibration_error(correct, confidence).item() == pytest.approx(0.0, abs=1e-12)


def test_brier_matches_numpy_mean_squared_error():
    correct, confidence = _random_scored(seed=2)
    expected = np.mean((confidence.numpy() - correct.numpy()) ** 2)
    assert brier_score(correct, confidence).item() == pytest.approx(expected, abs=1e-12)
    metric = BrierScore()
    for lo, hi in [(0, 1), (1, 250), (250, 400)]:
        metric.update(correct[lo:hi], confidence[lo:hi])
    assert metric.compute().item() == pytest.approx(expected, abs=1e-12)


def test_nan_confidence_and_masked_rows_are_dropped():
    correct = torch.tensor([1, 0, 1, 0, 1])
    confidence = torch.tensor([0.8, float("nan"), 0.6, 0.2, 0.0])
    mask = torch.tensor([1, 1, 1, 1, 0], dtype=torch.bool)
    kept = torch.tensor([0, 2, 3])
    assert brier_score(correct, confidence, mask=mask).item() == pytest.approx((0.04 + 0.16 + 0.04) / 3)
    assert (
        expected_calibration_error(correct, confidence, mask=mask).item()
        == expected_calibration_error(correct[kept], confidence[kept]).item()
    )


def test_no_scored_rows_gives_nan_with_a_warning():
    for metric, name in ((ExpectedCalibrationError(), "ECE"), (BrierScore(), "Brier")):
        metric.update(torch.tensor([1, 0]), torch.tensor([float("nan"), float("nan")]))
        with pytest.warns(UserWarning, match=name):
            assert math.isnan(metric.compute().item())


def test_confidence_outside_unit_interval_is_rejected():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        brier_score(torch.tensor([1, 0]), torch.tensor([1.5, 0.2]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ExpectedCalibrationError().update(torch.tensor([1, 0]), torch.tensor([-0.1, 0.2]))
    with pytest.raises(ValueError, match="float"):
        brier_score(torch.tensor([1, 0]), torch.tensor([1, 0]))
