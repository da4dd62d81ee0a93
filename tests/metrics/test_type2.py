import math

import numpy as np
import pytest
import torch
from scipy.stats import mannwhitneyu, norm

from metalight.metrics.type2 import DPrimeType2, Type2AUROC, dprime_type2, type2_auroc

torch.set_num_threads(1)


def _random_answers(n: int = 200, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    correct = torch.rand(n, generator=g) < 0.4
    said_yes = torch.where(correct, torch.rand(n, generator=g) < 0.7, torch.rand(n, generator=g) < 0.3)
    return correct, said_yes


def _scipy_dprime(correct: np.ndarray, said_yes: np.ndarray, correction: str) -> float:
    yc, nc = (said_yes & correct).sum(), correct.sum()
    yi, ni = (said_yes & ~correct).sum(), (~correct).sum()
    if correction == "clip":
        h, f = np.clip([yc / nc, yi / ni], 1e-4, 1 - 1e-4)
    else:
        h, f = (yc + 0.5) / (nc + 1), (yi + 0.5) / (ni + 1)
    return norm.ppf(h) - norm.ppf(f)


@pytest.mark.parametrize("correction", ["clip", "loglinear"])
def test_dprime_matches_scipy_on_random_answers(correction):
    correct, said_yes = _random_answers()
    result = dprime_type2(correct, said_yes, correction=correction)
    c, y = correct.numpy(), said_yes.numpy()
    assert result["dprime_type2"].item() == pytest.approx(_scipy_dprime(c, y, correction), abs=1e-10)
    assert result["hit_rate"].item() == pytest.approx(y[c].mean())
    assert result["false_alarm_rate"].item() == pytest.approx(y[~c].mean())


def test_clip_bounds_rates_of_one_and_zero_at_1e_4():
    correct = torch.tensor([1, 1, 1, 0, 0, 0, 0])
    said_yes = torch.tensor([1, 1, 1, 0, 0, 0, 0])  # H = 1, F = 0
    result = dprime_type2(correct, said_yes)
    assert result["dprime_type2"].item() == pytest.approx(norm.ppf(1 - 1e-4) - norm.ppf(1e-4), abs=1e-10)
    assert result["dprime_type2"].item() == pytest.approx(7.4380, abs=1e-4)
    assert (result["hit_rate"].item(), result["false_alarm_rate"].item()) == (1.0, 0.0)  # raw, not clipped


def test_loglinear_corrects_extreme_rates_with_half_counts():
    correct = torch.tensor([1, 1, 1, 0, 0, 0, 0])
    said_yes = torch.tensor([1, 1, 1, 0, 0, 0, 0])
    expected = norm.ppf(3.5 / 4) - norm.ppf(0.5 / 5)
    loglinear = dprime_type2(correct, said_yes, correction="loglinear")["dprime_type2"].item()
    assert loglinear == pytest.approx(expected)
    assert expected < dprime_type2(correct, said_yes, correction="clip")["dprime_type2"].item()


@pytest.mark.parametrize("correct_value", [True, False])
def test_one_empty_class_gives_nan_dprime_and_a_warning(correct_value):
    correct = torch.full((5,), correct_value)
    said_yes = torch.tensor([1, 0, 1, 1, 0], dtype=torch.bool)
    with pytest.warns(UserWarning, match="d'type2 is NaN"):
        result = dprime_type2(correct, said_yes)
    assert math.isnan(result["dprime_type2"].item())
    empty_rate = "false_alarm_rate" if correct_value else "hit_rate"
    full_rate = "hit_rate" if correct_value else "false_alarm_rate"
    assert math.isnan(result[empty_rate].item())
    assert result[full_rate].item() == pytest.approx(0.6)


def test_mask_drops_rows_as_if_absent():
    correct, said_yes = _random_answers(seed=1)
    mask = torch.rand(correct.shape[0], generator=torch.Generator().manual_seed(2)) < 0.7
    masked = dprime_type2(correct, said_yes, mask=mask)
    subset = dprime_type2(correct[mask], said_yes[mask])
    assert masked == subset
    assert masked["dprime_type2"] != dprime_type2(correct, said_yes)["dprime_type2"]


def test_class_over_batches_equals_functional_over_all_rows():
    correct, said_yes = _random_answers(n=301, seed=3)
    metric = DPrimeType2(correction="loglinear")
    for lo, hi in [(0, 17), (17, 150), (150, 301)]:
        metric.update(correct[lo:hi], said_yes[lo:hi])
    assert metric.compute() == dprime_type2(correct, said_yes, correction="loglinear")
    metric.reset()
    metric.update(correct, said_yes.int())
    assert metric.compute() == dprime_type2(correct, said_yes, correction="loglinear")


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="correction"):
        DPrimeType2(correction="hautus")
    with pytest.raises(ValueError, match="0/1"):
        dprime_type2(torch.tensor([0, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="same length"):
        dprime_type2(torch.tensor([0, 1, 1]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="mask"):
        dprime_type2(torch.tensor([0, 1]), torch.tensor([0, 1]), mask=torch.tensor([True]))


def _rank_auroc(correct: np.ndarray, score: np.ndarray) -> float:
    """Pairwise definition: P(score_correct > score_wrong) + P(tie) / 2."""
    pos, neg = score[correct], score[~correct]
    diff = pos[:, None] - neg[None, :]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def test_auroc_matches_mann_whitney_and_pairwise_count_with_ties():
    g = torch.Generator().manual_seed(4)
    correct = torch.rand(300, generator=g) < 0.35
    # rounded to one decimal: many ties
    confidence = (torch.rand(300, generator=g) + 0.3 * correct).clamp(max=1).mul(10).round().div(10)
    c, s = correct.numpy(), confidence.double().numpy()
    u = mannwhitneyu(s[c], s[~c]).statistic
    value = type2_auroc(correct, confidence).item()
    # torchmetrics divides its counts in float32
    assert value == pytest.approx(u / (c.sum() * (~c).sum()), abs=1e-6)
    assert value == pytest.approx(_rank_auroc(c, s), abs=1e-6)


def test_auroc_of_unbounded_scores_depends_only_on_their_order():
    g = torch.Generator().manual_seed(5)
    correct = torch.rand(100, generator=g) < 0.5
    logits = torch.randn(100, generator=g, dtype=torch.float64) * 30 + 5 * correct  # sigmoid would saturate
    expected = _rank_auroc(correct.numpy(), logits.numpy())
    assert type2_auroc(correct, logits).item() == pytest.approx(expected, abs=1e-6)


def test_auroc_drops_nan_confidence_and_masked_rows():
    correct = torch.tensor([1, 1, 0, 0, 1, 0])
    confidence = torch.tensor([0.9, float("nan"), 0.5, 0.1, 0.05, 0.99])
    mask = torch.tensor([1, 1, 1, 1, 1, 0], dtype=torch.bool)
    # kept: correct 0.9, 0.05; wrong 0.5, 0.1 -> pairs won: (0.9>0.5, 0.9>0.1) = 2 of 4
    assert type2_auroc(correct, confidence, mask=mask).item() == pytest.approx(0.5)


def test_auroc_with_one_class_is_nan_with_a_warning():
    metric = Type2AUROC()
    metric.update(torch.tensor([1, 1, 1]), torch.tensor([0.2, 0.5, 0.9]))
    with pytest.warns(UserWarning, match="AUROC2 is NaN"):
        assert math.isnan(metric.compute().item())


def test_auroc_class_over_batches_equals_functional():
    g = torch.Generator().manual_seed(6)
    correct = torch.rand(257, generator=g) < 0.3
    confidence = torch.rand(257, generator=g)
    metric = Type2AUROC()
    for lo, hi in [(0, 100), (100, 101), (101, 257)]:
        metric.update(correct[lo:hi], confidence[lo:hi])
    assert metric.compute().item() == pytest.approx(type2_auroc(correct, confidence).item(), abs=1e-12)
