import math

import numpy as np
import pytest
import torch
from scipy.optimize import OptimizeResult, approx_fprime
from scipy.stats import norm

from metalight.metrics import metad
from metalight.metrics.metad import (
    MetaDPrime,
    cast_to_two_stimuli,
    confidence_ratings,
    fit_meta_d_mle,
    meta_d_from_confidence,
)

torch.set_num_threads(1)

N_TRIALS = 100_000
OFFSETS_RS1 = (0.4, 0.9, 1.6)  # type-2 criteria of "S1" responses: meta_c minus these
OFFSETS_RS2 = (0.3, 1.1, 1.7)  # of "S2" responses: meta_c plus these


def _expected_counts(
    d: float,
    meta_d: float,
    c: float,
    n: float = N_TRIALS,
    offsets_rs1: tuple[float, ...] = OFFSETS_RS1,
    offsets_rs2: tuple[float, ...] = OFFSETS_RS2,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected (nR_S1, nR_S2) of the meta-d' generative model, written with scipy.stats.norm.

    Type 1: evidence x ~ N(∓d/2, 1) for S1/S2, response "S2" iff x > c.
    Type 2, given the response: y ~ N(∓meta_d/2, 1) cut at meta_c = c·meta_d/d and the offsets.
    Order: ["S1", most confident], ..., ["S1", least], ["S2", least], ..., ["S2", most].
    """
    meta_c = c * meta_d / d
    edges_rs1 = np.array([-np.inf, *[meta_c - o for o in sorted(offsets_rs1, reverse=True)], meta_c])
    edges_rs2 = np.array([meta_c, *[meta_c + o for o in sorted(offsets_rs2)], np.inf])
    counts = []
    for sign in (-1, 1):
        p_respond_s1 = norm.cdf(c, loc=sign * d / 2)
        below = norm.cdf(edges_rs1, loc=sign * meta_d / 2)
        above = norm.sf(edges_rs2, loc=sign * meta_d / 2)
        ratings_rs1 = np.diff(below) / below[-1]
        ratings_rs2 = -np.diff(above) / above[0]
        counts.append(n * np.concatenate([p_respond_s1 * ratings_rs1, (1 - p_respond_s1) * ratings_rs2]))
    return counts[0], counts[1]


def test_published_metadpy_example_is_reproduced():
    # metadpy/tests/test_mle.py (padding 1/8 per cell): d' 1.535, meta-d' 1.634, m_diff 0.099, M-ratio 1.064.
    fit = fit_meta_d_mle([52, 32, 35, 37, 26, 12, 4, 2], [2, 5, 15, 22, 33, 38, 40, 45], pad=True)
    assert fit.converged
    assert round(fit.d_prime, 3) == 1.535
    assert round(fit.meta_d_prime, 3) == 1.634
    assert round(fit.m_diff, 3) == 0.099
    assert round(fit.m_ratio, 3) == 1.064


@pytest.mark.parametrize(
    ("d", "meta_d", "c"),
    [(1.5, 1.0, 0.0), (2.0, 2.6, 0.3), (1.0, 0.5, -0.4), (3.0, 0.2, 0.5), (0.5, 3.0, -1.0)],
)
def test_fit_recovers_meta_d_and_criteria_from_expected_counts(d, meta_d, c):
    fit = fit_meta_d_mle(*_expected_counts(d, meta_d, c), pad=False)
    assert fit.converged
    assert fit.d_prime == pytest.approx(d, abs=1e-9)
    assert fit.criterion == pytest.approx(c, abs=1e-9)
    assert fit.meta_d_prime == pytest.approx(meta_d, abs=2e-3)
    assert fit.m_ratio == pytest.approx(meta_d / d, abs=2e-3)
    meta_c = c * meta_d / d
    expected_rs1 = [meta_c - o for o in sorted(OFFSETS_RS1, reverse=True)]
    np.testing.assert_allclose(fit.t2_criteria_rS1, expected_rs1, atol=5e-3)
    np.testing.assert_allclose(fit.t2_criteria_rS2, [meta_c + o for o in sorted(OFFSETS_RS2)], atol=5e-3)


@pytest.mark.parametrize("s", [1.0, 0.7])
def test_likelihood_gradient_matches_finite_differences(s):
    n_s1, n_s2 = _expected_counts(1.3, 0.9, 0.2)
    counts = np.stack([n_s1[:4], n_s2[:4], n_s2[4:], n_s1[4:]]) / N_TRIALS
    params = np.array([0.9, -1.5, -1.0, -0.3, 0.2, 0.8, 1.4])
    value = lambda p: metad._type2_log_likelihood(p, counts, 0.3, s)[0]  # noqa: E731
    analytic = metad._type2_log_likelihood(params, counts, 0.3, s)[1]
    np.testing.assert_allclose(analytic, approx_fprime(params, value, 1e-7), rtol=1e-4, atol=1e-6)


def test_ideal_sdt_observer_has_meta_d_equal_to_d():
    # A plain rating SDT observer: one evidence variable, 7 ordered criteria, no separate type-2 noise.
    d, criteria = 1.8, np.array([-1.2, -0.6, -0.2, 0.1, 0.5, 0.9, 1.4])
    edges = np.concatenate([[-np.inf], criteria, [np.inf]])
    n_s1 = N_TRIALS * np.diff(norm.cdf(edges, loc=-d / 2))
    n_s2 = N_TRIALS * np.diff(norm.cdf(edges, loc=d / 2))
    fit = fit_meta_d_mle(n_s1, n_s2, pad=False)
    assert fit.d_prime == pytest.approx(d, abs=1e-9)
    assert fit.meta_d_prime == pytest.approx(d, abs=2e-3)
    assert fit.m_ratio == pytest.approx(1.0, abs=2e-3)


def test_fit_rejects_malformed_counts():
    with pytest.raises(ValueError, match="even length"):
        fit_meta_d_mle([1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="same length"):
        fit_meta_d_mle([1, 2, 3, 4], [1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError, match=">= 0"):
        fit_meta_d_mle([1, -2, 3, 4], [1, 2, 3, 4])
    with pytest.raises(ValueError, match="undefined"):  # no "S2" responses to S2 and no padding: HR = 0
        fit_meta_d_mle([5, 5, 0, 0], [5, 5, 0, 0], pad=False)


def test_uniform_ratings_are_equal_width_bins_with_one_in_the_top_bin():
    confidence = torch.tensor([0.0, 0.24, 0.25, 0.5, 0.74, 0.99, 1.0])
    assert confidence_ratings(confidence, 4).tolist() == [1, 1, 2, 3, 3, 4, 4]


def test_quantile_ratings_hold_equal_counts():
    confidence = torch.arange(8) / 8
    assert confidence_ratings(confidence, 4, binning="quantile").tolist() == [1, 1, 2, 2, 3, 3, 4, 4]


def test_cast_makes_correct_answers_s1_responses_and_mirrors_s2():
    correct = torch.tensor([1, 1, 0, 1, 0], dtype=torch.bool)
    ratings = torch.tensor([4, 1, 2, 4, 4])
    n_s1, n_s2 = cast_to_two_stimuli(correct, ratings, n_ratings=4)
    assert n_s1.tolist() == [2, 0, 0, 1, 0, 1, 0, 1]  # correct by rating 4..1, then wrong by rating 1..4
    assert n_s2.tolist() == [1, 0, 1, 0, 1, 0, 0, 2]


def test_cast_gives_type1_d_of_twice_probit_accuracy():
    g = torch.Generator().manual_seed(0)
    correct = torch.rand(500, generator=g) < 0.7
    confidence = torch.rand(500, generator=g)
    fit = meta_d_from_confidence(correct, confidence, pad=False)
    assert fit.d_prime == pytest.approx(2 * norm.ppf(correct.double().mean().item()), abs=1e-9)
    assert fit.criterion == pytest.approx(0.0, abs=1e-9)


def _qa_answers(d: float, meta_d: float, n: int = 200_000) -> tuple[torch.Tensor, torch.Tensor]:
    """Answers of an unbiased QA observer: the S1 trials of the model, one confidence per rating.

    A QA observer has one confidence scale for right and wrong answers, so the criteria of the
    two responses are mirror images (offsets_rs1 == offsets_rs2), as the cast assumes.
    """
    n_s1, _ = _expected_counts(d, meta_d, c=0.0, n=n, offsets_rs2=OFFSETS_RS1)
    n_s1 = np.round(n_s1).astype(int)
    k = n_s1.size // 2
    correct_by_rating, wrong_by_rating = n_s1[:k][::-1], n_s1[k:]  # ratings 1..k
    centres = (np.arange(k) + 0.5) / k
    correct = np.concatenate([np.ones(correct_by_rating.sum()), np.zeros(wrong_by_rating.sum())])
    confidence = np.concatenate([np.repeat(centres, correct_by_rating), np.repeat(centres, wrong_by_rating)])
    return torch.tensor(correct, dtype=torch.bool), torch.tensor(confidence, dtype=torch.float32)


def test_meta_d_from_confidence_recovers_the_qa_observer():
    correct, confidence = _qa_answers(d=1.5, meta_d=1.0)
    fit = meta_d_from_confidence(correct, confidence, n_ratings=4, pad=False)
    assert fit.d_prime == pytest.approx(1.5, abs=5e-3)
    assert fit.meta_d_prime == pytest.approx(1.0, abs=0.02)
    metric = MetaDPrime(n_ratings=4)
    metric.update(correct, confidence)
    padded = metric.compute()
    assert padded["meta_d_prime"].item() == pytest.approx(1.0, abs=0.02)  # padding is negligible at this N
    assert padded["m_ratio"].item() == pytest.approx(1.0 / 1.5, abs=0.02)


def test_class_over_batches_with_mask_and_nan_equals_functional():
    correct, confidence = _qa_answers(d=1.2, meta_d=1.5, n=2_000)
    perm = torch.randperm(correct.shape[0], generator=torch.Generator().manual_seed(1))
    correct, confidence = correct[perm], confidence[perm].clone()
    confidence[::7] = float("nan")
    mask = torch.arange(correct.shape[0]) % 5 != 0
    metric = MetaDPrime()
    for lo, hi in [(0, 333), (333, 1000), (1000, correct.shape[0])]:
        metric.update(correct[lo:hi], confidence[lo:hi], mask=mask[lo:hi])
    fit = meta_d_from_confidence(correct, confidence, mask=mask)
    computed = metric.compute()
    assert computed["meta_d_prime"].item() == fit.meta_d_prime
    assert computed["m_ratio"].item() == fit.m_ratio
    keep = mask & ~torch.isnan(confidence)
    assert fit == meta_d_from_confidence(correct[keep], confidence[keep])


@pytest.mark.parametrize("all_correct", [True, False])
def test_one_class_gives_nan_with_a_warning(all_correct):
    metric = MetaDPrime()
    metric.update(torch.full((10,), all_correct), torch.linspace(0, 1, 10))
    with pytest.warns(UserWarning, match="meta-d' is NaN"):
        result = metric.compute()
    assert math.isnan(result["meta_d_prime"].item()) and math.isnan(result["m_ratio"].item())


def test_accuracy_below_one_half_keeps_meta_d_but_not_m_ratio():
    correct, confidence = _qa_answers(d=1.0, meta_d=1.0, n=2_000)
    correct, confidence = (
        torch.cat([correct, torch.zeros(3_000, dtype=torch.bool)]),
        torch.cat([confidence, torch.full((3_000,), 0.1)]),
    )
    metric = MetaDPrime()
    metric.update(correct, confidence)
    with pytest.warns(UserWarning, match="M-ratio is NaN"):
        result = metric.compute()
    assert result["meta_d_prime"].item() > 0
    assert math.isnan(result["m_ratio"].item())


def test_a_failed_optimisation_gives_nan_with_a_warning(monkeypatch):
    def failing_minimize(fun, x0, **kwargs):
        x0 = np.asarray(x0)
        return OptimizeResult(x=x0, fun=fun(x0)[0], success=False, message="Iteration limit reached")

    monkeypatch.setattr(metad, "minimize", failing_minimize)
    correct, confidence = _qa_answers(d=1.5, meta_d=1.0, n=1_000)
    metric = MetaDPrime()
    metric.update(correct, confidence)
    with pytest.warns(UserWarning, match="did not converge"):
        result = metric.compute()
    assert math.isnan(result["meta_d_prime"].item())
