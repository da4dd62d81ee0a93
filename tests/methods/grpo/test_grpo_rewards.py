"""The shared completion rewards by hand (lookup and checks: tests/methods/test_reward_registry.py)."""

import pytest

from metalight.data.records import QARecord
from metalight.methods.rewards import alias_match, resolve_reward, token_f1, token_f1_reward

RECORDS = [QARecord("1", "Who directed Avatar?", ["James Cameron"]), QARecord("2", "2+2?", ["4", "four"])]


def test_builtin_rewards_by_hand():
    completions = ["It was james cameron.", "five"]
    assert alias_match([], completions, RECORDS).tolist() == [1.0, 0.0]
    assert resolve_reward("exact_match")([], ["James Cameron", "Four"], RECORDS).tolist() == [1.0, 1.0]
    # "the james cameron film": normalised tokens james cameron film vs james cameron -> P 2/3, R 1, F1 0.8
    assert token_f1("The James Cameron film", ["James Cameron"]) == pytest.approx(0.8)
    assert token_f1_reward([], ["", "4 four"], RECORDS).tolist() == pytest.approx([0.0, 2 / 3])


def test_builtin_rewards_resolve_by_name_and_dotted_path():
    assert resolve_reward("alias_match") is alias_match
    assert resolve_reward("metalight.methods.rewards.token_f1_reward") is token_f1_reward
