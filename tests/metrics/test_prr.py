"""PRR against an independent NumPy transcription of LM-Polygraph's definition (sort, cumsum, 1,000
shuffles)."""

import itertools
import math

import numpy as np
import pytest
import torch

from metalight.metrics.prr import PredictionRejectionRatio, prediction_rejection_ratio, rejection_curve

torch.set_num_threads(1)


def polygraph_area(uncertainty: np.ndarray, target: np.ndarray, max_rejection: float = 1.0) -> float:
    """LM-Polygraph ``PredictionRejectionArea.__call__``: ascending uncertainty, retained means, averaged."""
    lo, hi = target.min(), target.max()
    if np.isclose(lo, hi):
        lo, hi = lo - 1, hi + 1
    target = (target - lo) / (hi - lo)
    n = len(uncertainty)
    n_rej = int(max_rejection * n)
    sorted_target = target[np.argsort(uncertainty, kind="stable")]
    cumsum = np.cumsum(sorted_target)[-n_rej:]
    scores = (cumsum / np.arange(n - n_rej + 1, n + 1))[::-1]
    return float(np.sum(scores) / n_rej)


def polygraph_prr(confidence: np.ndarray, target: np.ndarray, max_rejection: float = 1.0) -> float:
    """LM-Polygraph's normalised value: oracle = −target as uncertainty, random = mean of 1,000 shuffles."""
    area = polygraph_area(-confidence, target, max_rejection)
    oracle = polygraph_area(-target, target, max_rejection)
    rng = np.random.RandomState(42)
    order = np.arange(len(target))
    shuffled = []
    for _ in range(1000):
        rng.shuffle(order)
        shuffled.append(polygraph_area(order.astype(float), target, max_rejection))
    random = float(np.mean(shuffled))
    return (area - random) / (oracle - random)


def _data(n=150, seed=0):
    rng = np.random.default_rng(seed)
    correct = rng.random(n) < 0.45
    confidence = np.where(correct, rng.normal(0.6, 0.2, n), rng.normal(0.4, 0.2, n))  # continuous: no ties
    return confidence, correct.astype(float)


@pytest.mark.parametrize("max_rejection", [1.0, 0.5])
def test_matches_lm_polygraph_with_1000_shuffles_within_sampling_error(max_rejection):
    confidence, correct = _data()
    ours = prediction_rejection_ratio(torch.tensor(confidence), torch.tensor(correct), max_rejection).item()
    theirs = polygraph_prr(confidence, correct, max_rejection)
    assert 0.1 < ours < 0.9
    # Only the random baseline differs (exact expectation vs 1,000 shuffles): a few 1e-3 at most here.
    assert ours == pytest.approx(theirs, abs=5e-3)


def test_exact_random_baseline_equals_the_mean_over_all_permutations():
    target = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    areas = [polygraph_area(np.array(p, dtype=float), target) for p in itertools.permutations(range(6))]
    assert np.mean(areas) == pytest.approx(target.mean(), abs=1e-12)


def test_ties_count_at_the_expectation_over_tie_orders():
    confidence = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])  # a yes/no report
    correct = np.array([1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    tie_orders = []
    for perm in itertools.permutations(range(7)):
        # Break the ties of the binary score by the permutation; order across groups is kept.
        tie_orders.append(polygraph_prr_no_random(confidence + 1e-3 * np.array(perm), correct))
    ours = prediction_rejection_ratio(torch.tensor(confidence), torch.tensor(correct)).item()
    assert ours == pytest.approx(np.mean(tie_orders), abs=1e-12)


def polygraph_prr_no_random(confidence, target):
    area, oracle = polygraph_area(-confidence, target), polygraph_area(-target, target)
    return (area - target.mean()) / (oracle - target.mean())


def test_row_order_does_not_change_a_tied_score():
    confidence = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 0.0])
    correct = torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.0])
    perm = torch.tensor([5, 3, 1, 0, 2, 4])
    assert prediction_rejection_ratio(confidence, correct).item() == pytest.approx(
        prediction_rejection_ratio(confidence[perm], correct[perm]).item(), abs=1e-12
    )


def test_oracle_is_one_reverse_is_negative_and_nan_rows_are_dropped():
    quality = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0])
    assert prediction_rejection_ratio(quality + 0.1 * torch.arange(5), quality).item() == pytest.approx(1.0)
    assert prediction_rejection_ratio(-quality, quality).item() < 0
    with_nan = torch.tensor([0.9, 0.1, 0.8, float("nan"), 0.2, 0.3])
    quality6 = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    keep = ~torch.isnan(with_nan)
    assert prediction_rejection_ratio(with_nan, quality6).item() == pytest.approx(
        prediction_rejection_ratio(with_nan[keep], quality6[keep]).item()
    )


def test_constant_quality_is_nan_with_a_warning():
    with pytest.warns(UserWarning, match="same quality"):
        assert math.isnan(prediction_rejection_ratio(torch.rand(5), torch.ones(5)).item())


def test_class_equals_function_across_batches_with_a_padding_mask():
    confidence, correct = _data(61, seed=3)
    c, q = torch.tensor(confidence, dtype=torch.float64), torch.tensor(correct)
    metric = PredictionRejectionRatio().double()
    metric.update(c[:30], q[:30])
    metric.update(
        torch.cat([c[30:], c[:2]]),
        torch.cat([q[30:], q[:2]]),
        mask=torch.cat([torch.ones(31, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)]),
    )
    assert metric.compute().item() == pytest.approx(prediction_rejection_ratio(c, q).item(), abs=1e-12)


def test_rejection_curve_starts_at_the_mean_and_ends_at_the_most_confident_answer():
    confidence = torch.tensor([0.2, 0.9, 0.5, 0.7])
    quality = torch.tensor([0.0, 1.0, 0.0, 1.0])
    rejected, kept = rejection_curve(confidence, quality)
    assert rejected.tolist() == [0.0, 0.25, 0.5, 0.75]
    assert kept.tolist() == pytest.approx([0.5, 2 / 3, 1.0, 1.0])


def test_bad_max_rejection_is_refused():
    with pytest.raises(ValueError, match="max_rejection"):
        PredictionRejectionRatio(max_rejection=0)
