"""Rewards: plain functions ``f(prompts, completions, records, **columns) -> Tensor[R]``, one signature for
every method, looked up by name in explicit tables.

A reward gets R prompts, the R completions that answer them and the R ``QARecord``s behind them, and returns
one number per completion. GRPO and MetaConf pass each sampled completion (G rows per question,
prompt-major); ESMA passes each question's direct prompt and answer. Beyond these three, a method hands over
what it measured of every completion as keyword *columns* (tensors of shape [R]): ESMA's are ``correct`` and
``said_yes`` (bool) and ``p_yes`` (float32, NaN where there is none) from the dual-prompt evaluation; GRPO has
none. A reward names the columns it reads as keyword-only arguments (``def f(prompts, completions, records, *,
correct)``), receives only those (all of them with ``**columns``), and a method that lacks one refuses the
reward before the run (:func:`check_columns`). A reward of a whole set (an AUROC, say) returns its value for
every row.

Names come from tables, never from importing a module: :data:`REWARDS` holds the completion rewards every
method can use (``alias_match``, ``exact_match``, ``token_f1``); a method adds its own table (ESMA's
``metalight.methods.esma.rewards.ESMA_REWARDS``, MetaConf's scorer's ``rewards()``) when it resolves a name
(:func:`resolve_reward`). A config may also name any function by its dotted path (``my_pkg.rewards.brevity``).

Values are checked where they come back (:func:`score_reward`), for every method alike:

* **NaN means "not applicable" to that completion** (the one NaN policy): ESMA leaves it out of the member's
  mean fitness (a member with no applicable item has NaN fitness and update weight 0); GRPO, as TRL, sums the
  other rewards of that row, and a row with no applicable reward gets advantage 0.
* ``+inf`` / ``-inf``, a result that is not one value per completion (shape ``(R,)``), a non-numeric result
  (strings, complex numbers, objects), or an exception inside the function stops the run with a one-line
  :class:`~metalight.errors.RewardError` naming the reward.
"""

from __future__ import annotations

import importlib
import inspect
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from metalight.errors import ConfigError, MetalightError, RewardError
from metalight.grading import exact_match, is_correct, normalize_answer

RewardFn = Callable[..., Tensor]


# ---- the completion rewards every method can use -----------------------------------------------------------
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


def alias_match(prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]) -> Tensor:
    """1.0 when a gold alias is a substring of the completion (ESMA's grading), else 0.0."""
    return torch.tensor([float(is_correct(c, r.answers)) for c, r in zip(completions, records)])


def exact_match_reward(prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]) -> Tensor:
    """1.0 when the normalised completion equals a normalised alias, else 0.0."""
    return torch.tensor([float(exact_match(c, r.answers)) for c, r in zip(completions, records)])


def token_f1_reward(prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]) -> Tensor:
    """SQuAD token F1 of the completion against its best alias, in [0, 1]."""
    return torch.tensor([token_f1(c, r.answers) for c, r in zip(completions, records)])


REWARDS: dict[str, RewardFn] = {
    "alias_match": alias_match,
    "exact_match": exact_match_reward,
    "token_f1": token_f1_reward,
}


# ---- names, columns, checks --------------------------------------------------------------------------------
def resolve_reward(name: str, *tables: Mapping[str, RewardFn]) -> RewardFn:
    """The reward called ``name`` in :data:`REWARDS` or one of ``tables`` (a method's own), or the function at
    dotted path ``name`` (``package.module.function``)."""
    known = {**REWARDS}
    for table in tables:
        known.update(table)
    if name in known:
        return known[name]
    module_name, _, attr = name.rpartition(".")
    if module_name:
        try:
            fn = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as err:
            raise ConfigError(
                f"reward {name!r}: cannot import it ({type(err).__name__}: {err}); known rewards: "
                f"{sorted(known)}"
            ) from err
        if callable(fn):
            return fn
        raise ConfigError(
            f"reward {name!r} is a {type(fn).__name__}, not a function f(prompts, completions, records)"
        )
    raise ConfigError(
        f"unknown reward {name!r}; use a known name {sorted(known)} or a dotted path package.module.function"
    )


def weighted_reward(weights: Mapping[str, float], *tables: Mapping[str, RewardFn]) -> RewardFn:
    """One reward from several: ``Σ weight · reward`` per completion (TRL's ``reward_weights``), each part
    resolved like a single reward (in :data:`REWARDS` and ``tables``) and checked; a part that is NaN ("not
    applicable") makes the sum NaN. The parts' columns are declared on ``combined.parts`` for
    :func:`check_columns`."""
    if not weights:
        raise ConfigError(
            "reward: an empty mapping; give reward names with their weights, e.g. "
            "{auroc_alignment: 1.0, correctness: 0.3}"
        )
    parts = [(name, resolve_reward(name, *tables), float(w)) for name, w in weights.items()]

    def combined(
        prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any], **columns: Any
    ) -> Tensor:
        total = torch.zeros(len(completions))
        for name, fn, weight in parts:
            total = total + weight * score_reward(name, fn, prompts, completions, records, **columns)
        return total

    combined.__name__ = " + ".join(f"{w:g}*{name}" for name, _, w in parts)
    combined.parts = parts
    return combined


def _parameters(fn: RewardFn) -> list[inspect.Parameter]:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable without a signature: the three arguments only
        return []


def check_columns(name: str, fn: RewardFn, provided: Collection[str]) -> None:
    """``ConfigError`` when ``fn`` needs a column (an argument after the first three, without a default) that
    the method does not provide."""
    for part, part_fn, _ in getattr(fn, "parts", ()):  # a weighted sum: each part declares its own columns
        check_columns(part, part_fn, provided)
    needed = [
        p.name
        for p in _parameters(fn)[3:]
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    missing = [column for column in needed if column not in provided]
    if missing:
        have = f"only {sorted(provided)}" if provided else "none"
        raise ConfigError(
            f"reward {name!r} reads the columns {missing}, but this method provides {have}; use it "
            f"with a method that measures them (ESMA: correct, said_yes, p_yes) or remove it"
        )


def _columns_for(fn: RewardFn, columns: Mapping[str, Any]) -> dict[str, Any]:
    """The columns ``fn`` declares: all of them with ``**columns``, else only its keyword arguments."""
    parameters = _parameters(fn)
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return dict(columns)
    wanted = {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    return {k: v for k, v in columns.items() if k in wanted}


def check_reward(name: str, values: Any, rows: int) -> Tensor:
    """``values`` as a float32 tensor of shape ``(rows,)``; ``RewardError`` naming the reward when they are
    not one real number (or NaN, "not applicable") per completion."""
    try:
        tensor = torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError) as err:
        raise RewardError(
            f"reward {name!r} returned {type(values).__name__} that is not numbers ({err}); return "
            f"one float per completion"
        ) from None
    if tensor.dtype.is_complex:
        raise RewardError(
            f"reward {name!r} returned dtype {tensor.dtype}; return real numbers (one float per completion)"
        )
    if tensor.shape != (rows,):
        raise RewardError(
            f"reward {name!r} returned shape {tuple(tensor.shape)}; it must return one value per "
            f"completion, shape ({rows},)"
        )
    tensor = tensor.to(torch.float32)
    infinite = torch.isinf(tensor)
    if infinite.any():
        bad = torch.nonzero(infinite).flatten()[:5].tolist()
        raise RewardError(
            f"reward {name!r} returned ±inf for completions {bad}; return a finite number (NaN "
            f"only for 'not applicable')"
        )
    return tensor


def score_reward(
    name: str,
    fn: RewardFn,
    prompts: Sequence[str],
    completions: Sequence[str],
    records: Sequence[Any],
    **columns: Any,
) -> Tensor:
    """``fn`` on one batch of completions (with the ``columns`` it declares), checked (:func:`check_reward`);
    an exception inside the function becomes a one-line ``RewardError`` naming the reward (the original stays
    chained as its cause)."""
    try:
        values = fn(prompts, completions, records, **_columns_for(fn, columns))
    except MetalightError:
        raise
    except Exception as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise RewardError(
            f"reward {name!r} raised {type(err).__name__}: {first_line}; fix the reward function "
            f"or remove it from the config"
        ) from err
    return check_reward(name, values, len(completions))
