"""Train-time metacognition pools every member's answers, matches the metrics computed on the pooled rows by
hand, and starts afresh each iteration."""

import math

import pytest
from scipy.stats import norm

from metalight.evaluation.dual_prompt import SampleResult
from metalight.methods.esma.population_metrics import PopulationMetacognition


def answer(correct: bool, said_yes: bool, p_yes: float, parsed: bool = True) -> SampleResult:
    return SampleResult(
        "q",
        "question?",
        ["a"],
        "direct",
        "answer",
        correct,
        correct,
        "meta",
        "Yes" if said_yes else "No",
        said_yes,
        parsed,
        p_yes,
    )


# Two members: pooled there are 3 correct (2 said yes) and 3 wrong (1 said yes); one meta answer unparsed.
MEMBER_A = [answer(True, True, 0.9), answer(True, False, 0.4), answer(False, False, 0.2, parsed=False)]
MEMBER_B = [answer(True, True, 0.7), answer(False, True, 0.6), answer(False, False, 0.1)]


def test_pooled_over_members_equals_the_hand_computation():
    metrics = PopulationMetacognition()
    metrics.update(MEMBER_A)
    metrics.update(MEMBER_B)
    values = metrics.compute()
    assert values["dprime_type2"] == pytest.approx(norm.ppf(2 / 3) - norm.ppf(1 / 3))
    assert values["yes_failure_rate"] == pytest.approx(1 / 3)  # 1 wrong of 3 yes
    assert values["no_failure_rate"] == pytest.approx(1 / 3)  # 1 correct of 3 no
    assert values["meta_unparsed_rate"] == pytest.approx(1 / 6)
    # P(yes) of correct 0.9, 0.4, 0.7 vs wrong 0.2, 0.6, 0.1: 8 of the 9 pairs ordered right.
    assert values["auroc_type2"] == pytest.approx(8 / 9)


def test_each_compute_starts_a_new_iteration():
    metrics = PopulationMetacognition()
    metrics.update(MEMBER_A)
    metrics.compute()
    metrics.update([answer(True, True, 0.8), answer(False, True, 0.3)])
    values = metrics.compute()
    assert values["yes_failure_rate"] == pytest.approx(0.5) and values["meta_unparsed_rate"] == 0.0
    assert math.isnan(values["no_failure_rate"])  # nobody said no this iteration


def test_without_p_yes_there_is_no_auroc_and_one_class_gives_nan():
    metrics = PopulationMetacognition(p_yes=False)
    metrics.update([answer(False, True, float("nan")), answer(False, False, float("nan"))])
    values = metrics.compute()
    assert "auroc_type2" not in values
    assert math.isnan(values["dprime_type2"])  # no correct answer: H is undefined
