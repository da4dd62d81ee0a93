"""Per-source summaries: metrics equal the metric functions, thresholds travel from val to test, IDK rates."""

import json
import math

import pytest
import torch

from metalight.errors import ConfigError
from metalight.evaluation.summary import ScoredSample, idk_rates, load_thresholds, summarize_sources
from metalight.metrics.selective import confidence_metrics, select_threshold


def _sample(i, correct, p_true, meta, extras=None):
    return ScoredSample(
        id=str(i),
        question="q",
        aliases=["a"],
        direct_prompt="",
        direct_answer="",
        correct=correct,
        exact_match=correct,
        meta_prompt="",
        meta_answer="",
        said_yes=meta,
        meta_parsed=True,
        p_yes=math.nan,
        confidence={"p_true": p_true, "meta": float(meta)},
        reports={"p_true": p_true > 0.5, "meta": meta},
        extras=extras or {},
    )


SAMPLES = [
    _sample(0, True, 0.9, True),
    _sample(1, True, 0.6, False),
    _sample(2, False, 0.7, True),
    _sample(3, False, 0.2, False),
    _sample(4, False, 0.4, False),
    _sample(5, True, 0.55, True),
]


def test_source_metrics_equal_the_metric_function_and_threshold_is_chosen_on_the_split():
    metrics, details, used = summarize_sources(SAMPLES, ["p_true", "meta"], "val", "clip", "youden", 5, {})
    correct = torch.tensor([s.correct for s in SAMPLES])
    score = torch.tensor([s.confidence["p_true"] for s in SAMPLES], dtype=torch.float64)
    expected = confidence_metrics(correct, score, score > 0.5, probability=True)
    for key in ("auroc_type2", "prr", "dprime_type2", "coverage", "selective_accuracy", "ece", "brier"):
        assert metrics[f"p_true/{key}"] == pytest.approx(expected[key].item())
    assert math.isnan(metrics["meta/ece"])  # a 0/1 report is not a probability
    best = select_threshold(correct, score, "youden")
    assert used["p_true"] == metrics["p_true/threshold"] == pytest.approx(best["threshold"])
    assert metrics["p_true/threshold_coverage"] == pytest.approx(best["coverage"])
    assert details["thresholds"]["p_true"]["selected_on"] == "val"
    assert len(details["thresholds"]["p_true"]["sweep"]) == 5


def test_test_split_applies_the_carried_threshold():
    metrics, details, _ = summarize_sources(
        SAMPLES, ["p_true"], "test", "clip", "youden", 5, {"p_true": 0.65}
    )
    assert metrics["p_true/threshold"] == 0.65
    assert metrics["p_true/threshold_coverage"] == pytest.approx(2 / 6)  # 0.9 and 0.7
    assert metrics["p_true/threshold_selective_accuracy"] == pytest.approx(1 / 2)
    assert details["thresholds"]["p_true"]["selected_on"] == "val"


def test_idk_rates_come_from_the_idk_answers():
    rows = [
        _sample(i, c, 0.5, True, {"idk_answered": a, "idk_correct": ic})
        for i, (c, a, ic) in enumerate(
            [(True, True, True), (False, True, False), (True, False, False), (False, None, None)]
        )
    ]
    rates = idk_rates(rows)
    assert rates["idk/abstention_rate"] == pytest.approx(1 / 3)  # the failed reply (None) is not counted
    assert rates["idk/answered_accuracy"] == pytest.approx(1 / 2)
    assert rates["idk/prompt_accuracy"] == pytest.approx(1 / 3)


def test_thresholds_are_read_from_a_validation_report(tmp_path):
    report = tmp_path / "val.json"
    report.write_text(json.dumps({"thresholds": {"p_yes": {"threshold": 0.4}}}))
    assert load_thresholds(str(report)) == {"p_yes": 0.4}
    assert load_thresholds(None) == {}
    with pytest.raises(ConfigError, match="not found"):
        load_thresholds(str(tmp_path / "missing.json"))
    (tmp_path / "plain.json").write_text("{}")
    with pytest.raises(ConfigError, match="no 'thresholds'"):
        load_thresholds(str(tmp_path / "plain.json"))
