"""ESMA's rewards on hand-built cases, the fitness mean, and the registry (names and dotted paths)."""

from types import SimpleNamespace

import pytest
import torch

from metalight.errors import ConfigError
from metalight.methods.esma.rewards import (
    REWARDS,
    alignment_reward,
    correctness_reward,
    esma_reward,
    get_reward,
    member_fitness,
    register_reward,
    reward_summary,
)

# (correct, said_yes) for the four cases: correct-yes, wrong-no, correct-no, wrong-yes.
CASES = [SimpleNamespace(correct=c, said_yes=y) for c, y in [(True, True), (False, False), (True, False),
                                                             (False, True)]]


def test_esma_reward_table():
    assert esma_reward(CASES).tolist() == [2.0, 1.0, 1.0, 0.0]


def test_component_rewards():
    assert correctness_reward(CASES).tolist() == [1.0, 0.0, 1.0, 0.0]
    assert alignment_reward(CASES).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_fitness_is_the_mean_and_ignores_not_applicable_items():
    assert member_fitness(esma_reward, CASES) == pytest.approx(1.0)
    assert member_fitness(lambda r: torch.tensor([1.0, float("nan"), 3.0]), CASES[:3]) == pytest.approx(2.0)
    assert torch.isnan(torch.tensor(member_fitness(lambda r: torch.full((2,), float("nan")), CASES[:2])))


def test_summary_reports_each_component():
    assert reward_summary(CASES) == {"correctness": 0.5, "alignment": 0.5, "yes_ratio": 0.5}


def test_registry_by_name_dotted_path_and_registration():
    assert {"esma", "correctness", "alignment"} <= set(REWARDS)
    assert get_reward("esma") is esma_reward
    assert get_reward("metalight.methods.esma.rewards.alignment_reward") is alignment_reward
    with pytest.raises(ConfigError, match="unknown reward 'nope'"):
        get_reward("nope")

    @register_reward("test_constant")
    def constant(results):
        return torch.ones(len(results))

    try:
        assert get_reward("test_constant") is constant
        with pytest.raises(ValueError, match="already registered"):
            register_reward("test_constant")(lambda results: None)
    finally:
        REWARDS.pop("test_constant")
