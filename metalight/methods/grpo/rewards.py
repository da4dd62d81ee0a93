"""Completion rewards for GRPO: plain functions ``f(prompts, completions, records) -> Tensor[R]``.

A reward function gets the R rendered prompts, the R decoded completions and the R records they answer
(prompt-major, G rows per prompt) and returns one float per completion. Functions are chosen in a config by
their registered name (``alias_match``) or a dotted path (``my_pkg.rewards.brevity``) and combined with
weights by :class:`~metalight.methods.grpo.module.GRPOModule`. A wrong shape or a NaN raises an error naming the
function: metalight does not treat NaN as "not applicable".
"""

from __future__ import annotations

import importlib
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from metalight.errors import ConfigError
from metalight.grading import exact_match, is_correct, normalize_answer

RewardFn = Callable[[Sequence[str], Sequence[str], Sequence[Any]], Tensor]

REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: make a reward function selectable by ``name`` in configs."""

    def add(fn: RewardFn) -> RewardFn:
        if name in REWARDS and REWARDS[name] is not fn:
            raise ValueError(f"a reward named {name!r} is already registered ({REWARDS[name].__module__})")
        REWARDS[name] = fn
        return fn

    return add


def resolve_reward(name: str) -> RewardFn:
    """The reward registered as ``name``, or the function at dotted path ``name`` (``package.module.function``)."""
    if name in REWARDS:
        return REWARDS[name]
    module_name, _, attr = name.rpartition(".")
    if module_name:
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(f"reward {name!r}: cannot import it ({type(err).__name__}: {err}); registered "
                              f"rewards: {sorted(REWARDS)}") from err
        if callable(fn):
            return fn
    raise ConfigError(f"unknown reward {name!r}; use a registered name {sorted(REWARDS)} or a dotted path "
                      f"package.module.function")


def check_reward(name: str, values: Any, rows: int) -> Tensor:
    """``values`` as a float tensor [rows]; raise ``ValueError`` naming the function on a wrong shape or NaN."""
    tensor = torch.as_tensor(values, dtype=torch.float32)
    if tensor.shape != (rows,):
        raise ValueError(f"reward function {name!r} returned shape {tuple(tensor.shape)}; it must return one "
                         f"value per completion, shape ({rows},)")
    if torch.isnan(tensor).any():
        bad = torch.nonzero(torch.isnan(tensor)).flatten()[:5].tolist()
        raise ValueError(f"reward function {name!r} returned NaN for completions {bad}; return a number for "
                         f"every completion (e.g. 0.0 for an unscorable one)")
    return tensor


def token_f1(answer: str, aliases: Sequence[str]) -> float:
    """SQuAD token F1 (normalised bag-of-words overlap) of ``answer`` against its best alias, in [0, 1]."""
    predicted = normalize_answer(answer).split()
    best = 0.0
    for alias in aliases:
        gold = normalize_answer(alias).split()
        common = sum((Counter(predicted) & Counter(gold)).values())
        if common:
            precision, recall = common / len(predicted), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


# ---- built-in rewards ------------------------------------------------------------------------------------
@register_reward("alias_match")
def alias_match(prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]) -> Tensor:
    """1.0 when a gold alias is a substring of the completion (ESMA's grading), else 0.0."""
    return torch.tensor([float(is_correct(c, r.answers)) for c, r in zip(completions, records)])


@register_reward("exact_match")
def exact_match_reward(prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]) -> Tensor:
    """1.0 when the normalised completion equals a normalised alias, else 0.0."""
    return torch.tensor([float(exact_match(c, r.answers)) for c, r in zip(completions, records)])


@register_reward("token_f1")
def token_f1_reward(prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]) -> Tensor:
    """SQuAD token F1 of the completion against its best alias, in [0, 1]."""
    return torch.tensor([token_f1(c, r.answers) for c, r in zip(completions, records)])
