"""One reward registry for every method: plain functions ``f(prompts, completions, records) -> Tensor[R]``.

A reward gets R prompts, the R completions that answer them and the R records behind them, and returns one
number per completion. What a "record" is depends on the method: GRPO and MetaConf pass the question's
``QARecord`` (G rows per question, prompt-major); ESMA passes each question's evaluated ``SampleResult``
(``correct``, ``said_yes``, the direct and meta answers), with the direct prompts and answers as ``prompts`` and
``completions``. A config names a reward by its registered name (``alias_match``, ``esma``) or by a dotted path
(``my_pkg.rewards.brevity``); a name is known once the module that registers it is imported (each method
imports its own built-ins).

Values are checked where they come back (:func:`score_reward`), for every method alike:

* **NaN means "not applicable" to that completion** (the one NaN policy): ESMA leaves it out of the member's mean
  fitness (a member with no applicable item has NaN fitness and update weight 0); GRPO, as TRL, sums the other
  rewards of that row, and a row with no applicable reward gets advantage 0.
* ``+inf`` / ``-inf``, a result that is not one value per completion (shape ``(R,)``), a non-numeric result
  (strings, complex numbers, objects), or an exception inside the function stops the run with a one-line
  :class:`~metalight.errors.RewardError` naming the reward.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from metalight.errors import ConfigError, MetalightError, RewardError

RewardFn = Callable[[Sequence[str], Sequence[str], Sequence[Any]], Tensor]

REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
    """Decorator: make a reward function selectable by ``name`` in configs (a name is registered once)."""

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
        raise ConfigError(f"reward {name!r} is a {type(fn).__name__}, not a function "
                          f"f(prompts, completions, records)")
    raise ConfigError(f"unknown reward {name!r}; use a registered name {sorted(REWARDS)} or a dotted path "
                      f"package.module.function")


def weighted_reward(weights: dict[str, float]) -> RewardFn:
    """One reward from several: ``Σ weight · reward`` per completion (TRL's ``reward_weights``), each part
    resolved like a single reward and checked; a part that is NaN ("not applicable") makes the sum NaN."""
    if not weights:
        raise ConfigError("reward: an empty mapping; give reward names with their weights, e.g. "
                          "{auroc_alignment: 1.0, correctness: 0.3}")
    parts = [(name, resolve_reward(name), float(w)) for name, w in weights.items()]

    def combined(prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]) -> Tensor:
        total = torch.zeros(len(completions))
        for name, fn, weight in parts:
            total = total + weight * score_reward(name, fn, prompts, completions, records)
        return total

    combined.__name__ = " + ".join(f"{w:g}*{name}" for name, _, w in parts)
    return combined


def check_reward(name: str, values: Any, rows: int) -> Tensor:
    """``values`` as a float32 tensor of shape ``(rows,)``; ``RewardError`` naming the reward when they are not
    one real number (or NaN, "not applicable") per completion."""
    try:
        tensor = torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError) as err:
        raise RewardError(f"reward {name!r} returned {type(values).__name__} that is not numbers ({err}); return "
                          f"one float per completion") from None
    if tensor.dtype.is_complex:
        raise RewardError(f"reward {name!r} returned dtype {tensor.dtype}; return real numbers (one float per "
                          f"completion)")
    if tensor.shape != (rows,):
        raise RewardError(f"reward {name!r} returned shape {tuple(tensor.shape)}; it must return one value per "
                          f"completion, shape ({rows},)")
    tensor = tensor.to(torch.float32)
    infinite = torch.isinf(tensor)
    if infinite.any():
        bad = torch.nonzero(infinite).flatten()[:5].tolist()
        raise RewardError(f"reward {name!r} returned ±inf for completions {bad}; return a finite number (NaN "
                          f"only for 'not applicable')")
    return tensor


def score_reward(name: str, fn: RewardFn, prompts: Sequence[str], completions: Sequence[str],
                 records: Sequence[Any]) -> Tensor:
    """``fn`` on one batch of completions, checked (:func:`check_reward`); an exception inside the function
    becomes a one-line ``RewardError`` naming the reward (the original stays chained as its cause)."""
    try:
        values = fn(prompts, completions, records)
    except MetalightError:
        raise
    except Exception as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RewardError(f"reward {name!r} raised {type(err).__name__}: {first_line}; fix the reward function "
                          f"or remove it from the config") from err
    return check_reward(name, values, len(completions))
