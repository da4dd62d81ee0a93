"""Rewards: plain functions of evaluation results, chosen by name (or dotted path) from one registry.

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

``esma`` = c + 1[c = y]. A population member's fitness is the mean of its per-question rewards.
The registry is not ESMA-specific: any method can :func:`register_reward` its own function (whatever its
signature) and look it up with :func:`get_reward`. NaN in a reward means "not applicable" for that item.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from metalight.errors import ConfigError

REWARDS: dict[str, Callable[..., Tensor]] = {}


class ResultLike(Protocol):
    """What a result-based reward reads: :class:`metalight.evaluation.dual_prompt.SampleResult` has both fields."""

    correct: bool
    said_yes: bool


def register_reward(name: str) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Decorator: make ``fn`` available as ``reward: <name>`` (a name may be registered once)."""

    def wrap(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        if name in REWARDS and REWARDS[name] is not fn:
            raise ValueError(f"reward {name!r} is already registered ({REWARDS[name].__module__})")
        REWARDS[name] = fn
        return fn

    return wrap


def get_reward(name: str) -> Callable[..., Tensor]:
    """A registered reward by name, or any importable function by dotted path (``pkg.module.fn``)."""
    if name in REWARDS:
        return REWARDS[name]
    module_name, _, attr = name.rpartition(".")
    if module_name:
        try:
            return getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError):
            pass
    raise ConfigError(f"unknown reward {name!r}; use one of {sorted(REWARDS)} or a dotted path to a function")


def _correct_and_yes(results: Sequence[ResultLike]) -> tuple[Tensor, Tensor]:
    correct = torch.tensor([bool(r.correct) for r in results], dtype=torch.float32)
    said_yes = torch.tensor([bool(r.said_yes) for r in results], dtype=torch.float32)
    return correct, said_yes


@register_reward("correctness")
def correctness_reward(results: Sequence[ResultLike]) -> Tensor:
    """c: 1 when the direct answer is correct, else 0 (one value per result, float32)."""
    return _correct_and_yes(results)[0]


@register_reward("alignment")
def alignment_reward(results: Sequence[ResultLike]) -> Tensor:
    """1[c = y]: 1 when the meta answer's yes/no matches the direct answer's correctness."""
    correct, said_yes = _correct_and_yes(results)
    return (correct == said_yes).float()


@register_reward("esma")
def esma_reward(results: Sequence[ResultLike]) -> Tensor:
    """ESMA's joint reward c + 1[c = y]: 2 correct-yes, 1 wrong-no, 1 correct-no, 0 wrong-yes."""
    return correctness_reward(results) + alignment_reward(results)


def reward_summary(results: Sequence[ResultLike]) -> dict[str, float]:
    """Mean correctness, alignment and yes ratio of ``results`` (the per-component numbers ESMA logs)."""
    correct, said_yes = _correct_and_yes(results)
    if not len(results):
        return {"correctness": float("nan"), "alignment": float("nan"), "yes_ratio": float("nan")}
    return {"correctness": correct.mean().item(), "alignment": (correct == said_yes).float().mean().item(),
            "yes_ratio": said_yes.mean().item()}


def member_fitness(reward: Callable[[Sequence[Any]], Tensor], results: Sequence[Any]) -> float:
    """A member's fitness: the mean of its per-question rewards, ignoring NaN ("not applicable") items;
    NaN when no item has a reward."""
    values = reward(results).float()
    values = values[~torch.isnan(values)]
    return values.mean().item() if values.numel() else float("nan")
