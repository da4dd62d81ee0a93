"""Consistency rules: the checker finds exactly the violating pairs, and the fix options satisfy the rule."""

import random

import pytest

from metalight.errors import ConfigError
from metalight.methods.icm.consistency import (
    Complementary,
    ExclusiveAnswers,
    InconsistentPair,
    SameAnswerSameLabel,
    inconsistent_pairs,
    rule_for,
)


def test_gsm8k_rule_finds_exactly_the_violating_pairs():
    # Problem p1: answers 5, 5, 7 ; problem p2: answers 3, 4. Labels chosen to break each rule once.
    groups = ["p1", "p1", "p1", "p2", "p2"]
    keys = ["5", "5", "7", "3", "4"]
    labels = [1, 0, 1, 0, 0]
    pairs = inconsistent_pairs(groups, keys, labels, ExclusiveAnswers())
    assert set(pairs) == {
        InconsistentPair(0, 1, "implication"),  # same answer, different labels
        InconsistentPair(0, 2, "contradiction"),
    }  # 5 and 7 both correct
    # both wrong (p2) and 0 vs 7 (one false) are consistent; nothing across groups is compared


def test_unlabelled_claims_and_other_groups_are_never_paired():
    groups, keys = ["a", "a", "b"], ["1", "2", "1"]
    assert inconsistent_pairs(groups, keys, [1, None, 1], ExclusiveAnswers()) == []
    assert inconsistent_pairs(groups, keys, [1, 1, 1], ExclusiveAnswers()) == [
        InconsistentPair(0, 1, "contradiction")
    ]


def test_comparison_rule_requires_exactly_one_of_a_pair():
    groups, keys = ["q", "q"], ["A>B", "B>A"]
    rule = Complementary()
    assert inconsistent_pairs(groups, keys, [1, 1], rule) == [InconsistentPair(0, 1, "contradiction")]
    assert inconsistent_pairs(groups, keys, [0, 0], rule) == [InconsistentPair(0, 1, "contradiction")]
    assert inconsistent_pairs(groups, keys, [1, 0], rule) == []
    assert rule.consistent_options("A>B", "B>A") == [(1, 0), (0, 1)]


def test_consistent_options_follow_from_the_rule():
    assert ExclusiveAnswers().consistent_options("5", "7") == [(1, 0), (0, 1), (0, 0)]
    assert ExclusiveAnswers().consistent_options("5", "5") == [(1, 1), (0, 0)]
    assert SameAnswerSameLabel().consistent_options("x", "y") == [(1, 1), (1, 0), (0, 1), (0, 0)]
    for rule in (ExclusiveAnswers(), SameAnswerSameLabel(), Complementary()):
        for keys in (("a", "a"), ("a", "b")):
            for a, b in rule.consistent_options(*keys):
                assert rule.violation(*keys, a, b) is None


def test_truthfulqa_multi_answer_rule_only_ties_identical_answers():
    pairs = inconsistent_pairs(["q"] * 3, ["paris", "paris", "lyon"], [1, 0, 1], SameAnswerSameLabel())
    assert pairs == [InconsistentPair(0, 1, "implication")]


def test_shuffle_is_seeded():
    groups, keys, labels = ["g"] * 6, [str(i) for i in range(6)], [1] * 6
    first = inconsistent_pairs(groups, keys, labels, ExclusiveAnswers(), random.Random(3))
    again = inconsistent_pairs(groups, keys, labels, ExclusiveAnswers(), random.Random(3))
    assert first == again and len(first) == 15


def test_testbed_without_rules_is_a_clear_error():
    with pytest.raises(
        ConfigError, match=r"testbed 'poetry' has no consistency rules.*known testbeds: .*gsm8k"
    ):
        rule_for("poetry")
    assert isinstance(rule_for("gsm8k"), ExclusiveAnswers)
