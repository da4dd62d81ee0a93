"""Bootstrap intervals: they contain the point estimate, shrink with n, and a real change is significant."""

import math
import random

import pytest

from metalight.evaluation.dual_prompt import SampleResult
from metalight.evaluation.intervals import change_table, held_out_intervals, paired_change, verdict


def result(i: int, correct: bool, p_yes: float) -> SampleResult:
    return SampleResult(
        id=f"q{i}",
        question="",
        aliases=[],
        direct_prompt="",
        direct_answer="",
        correct=correct,
        exact_match=correct,
        meta_prompt="",
        meta_answer=None,
        said_yes=p_yes > 0.5,
        meta_parsed=True,
        p_yes=p_yes,
    )


def population(n: int, separation: float, seed: int = 0) -> list[SampleResult]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        correct = i % 3 == 0
        p = min(max(rng.gauss(0.5 + (separation if correct else -separation), 0.15), 0.0), 1.0)
        out.append(result(i, correct, p))
    return out


def test_interval_contains_the_estimate_and_narrows_with_more_questions():
    small, large = held_out_intervals(population(60, 0.1), 500), held_out_intervals(population(600, 0.1), 500)
    for name, iv in small.items():
        assert iv.low <= iv.value <= iv.high, name
    assert (
        large["auroc_type2"].high - large["auroc_type2"].low
        < small["auroc_type2"].high - small["auroc_type2"].low
    )


def test_a_real_change_is_significant_and_no_change_is_not():
    before = population(300, 0.0, seed=1)
    after = [result(i, r.correct, 0.9 if r.correct else 0.1) for i, r in enumerate(before)]
    change = paired_change(before, after, 500)
    assert change["auroc_type2"].excludes_zero() and change["auroc_type2"].value > 0.3
    assert "AUROC₂ rose" in verdict(change)
    # accuracy did not change; the yes ratio did (every wrong answer now says no): named on the same line
    assert "also significant: yes ratio" in verdict(change) and "accuracy" not in verdict(change)
    same = paired_change(before, before, 500)
    assert same["auroc_type2"].value == 0 and not same["auroc_type2"].excludes_zero()
    assert "not significant" in verdict(same) and same["auroc_type2"].p_value == 1.0
    assert change["auroc_type2"].significant() and change["auroc_type2"].p_value < 0.01
    table = change_table(held_out_intervals(before, 200), held_out_intervals(after, 200), change, 300)
    assert table.splitlines()[0].startswith("held-out (n=300)") and len(table.splitlines()) == 6


def test_one_class_gives_nan_and_mismatched_questions_are_refused():
    wrong = [result(i, False, 0.3) for i in range(20)]
    assert math.isnan(held_out_intervals(wrong, 100)["dprime_type2"].value)
    assert "undefined" in verdict(paired_change(wrong, wrong, 100))
    with pytest.raises(ValueError, match="same questions"):
        paired_change(wrong, wrong[:10], 100)


def test_four_flips_one_way_are_not_significant_even_when_the_bootstrap_interval_excludes_zero():
    """Two-sided exact p for 4 same-direction flips is 2/16 = 0.125: the permutation test says so."""
    before = [result(i, i < 40, 0.9 if i < 40 else 0.6) for i in range(400)]  # 40 right, all said yes
    after = [
        result(i, r.correct, 0.1 if 40 <= i < 44 else r.p_yes) for i, r in enumerate(before)
    ]  # 4 wrong: no
    change = paired_change(before, after, 2000)
    assert change["yes_ratio"].value == pytest.approx(-0.01)
    assert change["yes_ratio"].excludes_zero()  # the percentile interval alone would call this significant
    assert change["yes_ratio"].p_value == pytest.approx(0.125, abs=0.03)
    assert not change["yes_ratio"].significant()


def test_learning_verdict_needs_a_significant_gain_and_no_significant_accuracy_loss():
    from metalight.evaluation.intervals import Interval, learning_verdict, minimum_detectable_change

    def change(auroc, accuracy):
        return {
            "auroc_type2": auroc,
            "dprime_type2": Interval(0.1, -0.5, 0.7, 0.6),
            "accuracy": accuracy,
            "yes_ratio": Interval(0.0, 0.0, 0.0, 1.0),
        }

    gain, flat = Interval(0.12, 0.05, 0.19, 0.004), Interval(-0.01, -0.03, 0.01, 0.5)
    assert learning_verdict(change(gain, flat)).startswith("verdict: learned - AUROC")
    loss = Interval(-0.05, -0.08, -0.02, 0.001)
    assert "fell significantly" in learning_verdict(change(gain, loss))
    # p < 0.05 but the interval reaches zero: not called a gain
    assert learning_verdict(change(Interval(0.05, -0.001, 0.1, 0.04), flat)).startswith("verdict: not shown")
    assert minimum_detectable_change(gain) == pytest.approx(2.8016 * 0.14 / 3.9199, rel=1e-3)
    assert minimum_detectable_change(Interval(math.nan, math.nan, math.nan, math.nan)) is None
