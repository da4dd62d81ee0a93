"""Confidence-source metrics and threshold sweeps against direct NumPy / scikit-style computations."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from metalight.metrics.selective import (
    CONFIDENCE_METRIC_NAMES,
    ConfidenceMetrics,
    confidence_metrics,
    quantile_thresholds,
    select_threshold,
    threshold_table,
)

torch.set_num_threads(1)


def _answers(n=120, seed=0, ties=False):
    g = np.random.default_rng(seed)
    correct = g.random(n) < 0.4
    score = np.clip(np.where(correct, g.normal(0.65, 0.2, n), g.normal(0.4, 0.2, n)), 0, 1)
    if ties:
        score = np.round(score, 1)
    return correct, score


def _mann_whitney_auc(correct, score):
    pos, neg = score[correct], score[~correct]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return greater / (len(pos) * len(neg))


def _brute_point(correct, score, t):
    yes = np.nan_to_num(score, nan=-np.inf) >= t
    h, f = yes[correct].mean(), yes[~correct].mean()
    return {
        "coverage": yes.mean(),
        "selective_accuracy": correct[yes].mean() if yes.any() else math.nan,
        "hit_rate": h,
        "false_alarm_rate": f,
        "raw_alignment": (yes == correct).mean(),
        "dprime_type2": norm.ppf(np.clip(h, 1e-4, 1 - 1e-4)) - norm.ppf(np.clip(f, 1e-4, 1 - 1e-4)),
    }


def test_confidence_metrics_match_direct_computations():
    correct, score = _answers()
    score[[3, 17]] = np.nan
    report = np.nan_to_num(score, nan=0) > 0.5
    result = confidence_metrics(
        torch.tensor(correct), torch.tensor(score), torch.tensor(report), probability=True
    )
    assert list(result) == list(CONFIDENCE_METRIC_NAMES)
    scored = ~np.isnan(score)
    assert result["scored_rate"].item() == pytest.approx(scored.mean())
    assert result["accuracy"].item() == pytest.approx(correct.mean())
    assert result["auroc_type2"].item() == pytest.approx(
        _mann_whitney_auc(correct[scored], score[scored]), abs=1e-6
    )
    assert result["brier"].item() == pytest.approx(np.mean((score[scored] - correct[scored]) ** 2))
    h, f = report[correct].mean(), report[~correct].mean()
    assert result["dprime_type2"].item() == pytest.approx(norm.ppf(h) - norm.ppf(f))
    assert result["coverage"].item() == pytest.approx(report.mean())
    assert result["selective_accuracy"].item() == pytest.approx(correct[report].mean())
    assert result["raw_alignment"].item() == pytest.approx((report == correct).mean())


def test_a_non_probability_score_without_report_has_only_ranking_metrics():
    correct, score = _answers()
    log_scores = torch.tensor(np.log(score + 1e-3) * 7)  # e.g. a summed log-probability: any real number
    result = confidence_metrics(torch.tensor(correct), log_scores)
    assert not math.isnan(result["auroc_type2"].item()) and not math.isnan(result["prr"].item())
    for key in ("ece", "brier", "dprime_type2", "coverage", "selective_accuracy"):
        assert math.isnan(result[key].item())
    # Ranking metrics depend on the order only.
    same = confidence_metrics(torch.tensor(correct), torch.tensor(score))
    assert result["auroc_type2"].item() == pytest.approx(same["auroc_type2"].item())
    assert result["prr"].item() == pytest.approx(same["prr"].item())


def test_class_over_batches_with_padding_equals_function():
    correct, score = _answers(75, seed=2)
    c, s = torch.tensor(correct), torch.tensor(score)
    metric = ConfidenceMetrics(probability=True).double()
    metric.update(c[:40], s[:40], s[:40] > 0.5)
    metric.update(
        torch.cat([c[40:], c[:3]]),
        torch.cat([s[40:], s[:3]]),
        torch.cat([s[40:], s[:3]]) > 0.5,
        mask=torch.arange(38) < 35,
    )
    expected = confidence_metrics(c, s, s > 0.5, probability=True)
    got = metric.compute()
    for key in CONFIDENCE_METRIC_NAMES:
        assert got[key].item() == pytest.approx(expected[key].item(), nan_ok=True)


@pytest.mark.parametrize("ties", [False, True])
def test_threshold_table_matches_brute_force(ties):
    correct, score = _answers(ties=ties)
    score[5] = np.nan
    thresholds = torch.tensor([0.0, 0.25, 0.5, 0.6, 0.7, 1.0, 2.0], dtype=torch.float64)
    rows = threshold_table(torch.tensor(correct), torch.tensor(score), thresholds)
    for row, t in zip(rows, thresholds.tolist()):
        expected = _brute_point(correct, score, t)
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, nan_ok=True), (t, key)


@pytest.mark.parametrize("criterion", ["alignment", "youden", "dprime"])
def test_selected_threshold_is_the_best_of_every_candidate(criterion):
    correct, score = _answers(ties=True)
    key = {"alignment": "raw_alignment", "youden": None, "dprime": "dprime_type2"}[criterion]
    best = select_threshold(torch.tensor(correct), torch.tensor(score), criterion)
    candidates = sorted(set(score.tolist())) + [math.inf]
    values = []
    for t in candidates:
        point = _brute_point(correct, score, t)
        values.append(point["hit_rate"] - point["false_alarm_rate"] if key is None else point[key])
    first_best = candidates[int(np.argmax(values))]
    assert best["threshold"] == pytest.approx(first_best)
    assert best["criterion"] == criterion


def test_quantile_grid_spans_the_scores_and_skips_nan():
    score = torch.tensor([0.1, 0.2, float("nan"), 0.3, 0.4, 0.5])
    grid = quantile_thresholds(score, points=5)
    assert grid.tolist() == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    assert quantile_thresholds(torch.tensor([float("nan")])).numel() == 0


def test_no_score_cannot_choose_a_threshold():
    with pytest.raises(ValueError, match="no answer has a score"):
        select_threshold(torch.tensor([1, 0]), torch.tensor([float("nan"), float("nan")]))
