"""GRPO's built-in completion rewards, registered in the shared registry (:mod:`metalight.methods.rewards`, which
states the signature ``f(prompts, completions, records) -> Tensor[R]`` and the NaN policy).

Here a record is the ``QARecord`` each completion answers (G rows per question, prompt-major).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from metalight.grading import exact_match, is_correct, normalize_answer
from metalight.methods.rewards import register_reward


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
