"""ESMA's rewards, registered in the shared registry (:mod:`metalight.methods.rewards`: one signature
``f(prompts, completions, records) -> Tensor[R]``, one NaN policy), and a member's fitness.

ESMA's per-question rewards (cosmoquester/ESMA ``esma/reward.py``) from c = direct answer correct and
y = the meta answer said yes:

======  ======  ===========  =============  ===========
 c       y       ``esma``     ``correctness``  ``alignment``
======  ======  ===========  =============  ===========
 1       1       2            1              1
 0       0       1            0              1
 1       0       1            1              0
 0       1       0            0              0
======  ======  ===========  =============  ===========

``esma`` = c + 1[c = y]. Here a record is the question's evaluated
:class:`~metalight.evaluation.dual_prompt.SampleResult` (``correct``, ``said_yes``), the prompts and completions
its direct prompt and answer. A population member's fitness is the mean of its per-question rewards.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from metalight.methods.rewards import RewardFn, register_reward, score_reward


class ResultLike(Protocol):
    """What a result-based reward reads: :class:`metalight.evaluation.dual_prompt.SampleResult` has both fields."""

    correct: bool
    said_yes: bool


def _correct_and_yes(results: Sequence[ResultLike]) -> tuple[Tensor, Tensor]:
    correct = torch.tensor([bool(r.correct) for r in results], dtype=torch.float32)
    said_yes = torch.tensor([bool(r.said_yes) for r in results], dtype=torch.float32)
    return correct, said_yes


@register_reward("correctness")
def correctness_reward(prompts: Sequence[str], completions: Sequence[str], records: Sequence[ResultLike]) -> Tensor:
    """c: 1 when the direct answer is correct, else 0 (one value per result, float32)."""
    return _correct_and_yes(records)[0]


@register_reward("alignment")
def alignment_reward(prompts: Sequence[str], completions: Sequence[str], records: Sequence[ResultLike]) -> Tensor:
    """1[c = y]: 1 when the meta answer's yes/no matches the direct answer's correctness."""
    correct, said_yes = _correct_and_yes(records)
    return (correct == said_yes).float()


@register_reward("esma")
def esma_reward(prompts: Sequence[str], completions: Sequence[str], records: Sequence[ResultLike]) -> Tensor:
    """ESMA's joint reward c + 1[c = y]: 2 correct-yes, 1 wrong-no, 1 correct-no, 0 wrong-yes."""
    return correctness_reward(prompts, completions, records) + alignment_reward(prompts, completions, records)


def reward_summary(results: Sequence[ResultLike]) -> dict[str, float]:
    """Mean correctness, alignment and yes ratio of ``results`` (the per-component numbers ESMA logs)."""
    correct, said_yes = _correct_and_yes(results)
    if not len(results):
        return {"correctness": float("nan"), "alignment": float("nan"), "yes_ratio": float("nan")}
    return {"correctness": correct.mean().item(), "alignment": (correct == said_yes).float().mean().item(),
            "yes_ratio": said_yes.mean().item()}


def member_fitness(name: str, reward: RewardFn, results: Sequence[Any]) -> float:
    """A member's fitness: the mean of the reward over its evaluated questions, checked like every reward
    (one finite value per question, or NaN: "not applicable", left out); NaN when no question has a value."""
    prompts = [getattr(r, "direct_prompt", "") for r in results]
    completions = [getattr(r, "direct_answer", "") for r in results]
    values = score_reward(name, reward, prompts, completions, results)
    values = values[~torch.isnan(values)]
    return values.mean().item() if values.numel() else float("nan")
