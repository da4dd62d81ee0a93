"""Reward registry: names and dotted paths, shape / NaN checks naming the function, built-in rewards by hand."""

import pytest
import torch

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.methods.grpo.rewards import (
    REWARDS,
    alias_match,
    check_reward,
    register_reward,
    resolve_reward,
    token_f1,
    token_f1_reward,
)

RECORDS = [QARecord("1", "Who directed Avatar?", ["James Cameron"]), QARecord("2", "2+2?", ["4", "four"])]


def test_builtin_rewards_by_hand():
    completions = ["It was james cameron.", "five"]
    assert alias_match([], completions, RECORDS).tolist() == [1.0, 0.0]
    assert resolve_reward("exact_match")([], ["James Cameron", "Four"], RECORDS).tolist() == [1.0, 1.0]
    # "the james cameron film": normalised tokens james cameron film vs james cameron -> P 2/3, R 1, F1 0.8
    assert token_f1("The James Cameron film", ["James Cameron"]) == pytest.approx(0.8)
    assert token_f1_reward([], ["", "4 four"], RECORDS).tolist() == pytest.approx([0.0, 2 / 3])


def test_rewards_resolve_by_name_and_dotted_path():
    assert resolve_reward("alias_match") is alias_match
    assert resolve_reward("metalight.methods.grpo.rewards.token_f1_reward") is token_f1_reward
    with pytest.raises(ConfigError, match="unknown reward 'nope'"):
        resolve_reward("nope")
    with pytest.raises(ConfigError, match="cannot import"):
        resolve_reward("metalight.no_such_module.fn")


def test_register_refuses_a_second_function_under_a_taken_name():
    @register_reward("test_only_reward")
    def first(prompts, completions, records):
        return torch.zeros(len(completions))

    assert REWARDS["test_only_reward"] is first
    with pytest.raises(ValueError, match="already registered"):
        register_reward("test_only_reward")(lambda p, c, r: torch.zeros(len(c)))
    del REWARDS["test_only_reward"]


def test_wrong_shape_and_nan_name_the_function():
    assert check_reward("f", [1, 2, 3], 3).dtype == torch.float32
    with pytest.raises(ValueError, match=r"reward function 'brevity' returned shape \(2, 1\).*\(3,\)"):
        check_reward("brevity", torch.zeros(2, 1), 3)
    with pytest.raises(ValueError, match=r"'judge' returned NaN for completions \[1\]"):
        check_reward("judge", [0.0, float("nan"), 1.0], 3)
