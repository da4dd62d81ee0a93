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

Continuous meta rewards (metalight's, beyond the paper): with p = P(yes), the first meta-answer token's
probability of yes against no (one forward pass, no meta generation needed), they score how well p predicts
c, so two members that give the same yes/no answers still get different fitness:

* ``brier_alignment`` = 1 − (p − c)²: one minus the Brier score, in [0, 1];
* ``log_likelihood_alignment`` = c·log p + (1 − c)·log(1 − p), p clipped to [1e-6, 1 − 1e-6] so that p = 0 or 1
  gives a finite −13.8 instead of −∞;
* ``esma_brier`` = c + ``brier_alignment``: ESMA's joint reward with the binary alignment replaced by the Brier
  one (the same range, [0, 2]).

A question whose P(yes) is NaN (the tokenizer has no yes / no token) gets NaN: not applicable.

Discrimination rewards (metalight's): a Brier-type reward is raised most cheaply by moving every P(yes)
towards the base rate (Brier = calibration-in-the-large + refinement); these pay only for ranking or for
both classes alike, so saying "no" more often earns nothing:

* ``auroc_alignment``: each question's share of the member's AUROC₂ of P(yes) against correctness on the
  iteration's questions — for a right answer, the fraction of wrong answers it out-ranks, for a wrong one
  the fraction of right answers that out-rank it (ties count ½). Its mean over the questions *is* the AUROC₂,
  in [0, 1]; NaN (not applicable) for every question when all answers are right or all wrong;
* ``esma_auroc`` = c + ``auroc_alignment``: the joint reward with discrimination in place of alignment
  (mean: accuracy + AUROC₂, in [0, 2]);
* ``balanced_brier_alignment``: 1 − (p − c)² weighted by n / (2 n_c), so right and wrong answers weigh half
  each whatever their counts: mean 1 − (Brier on right + Brier on wrong) / 2. "No" to everything scores
  0.5, a constant 0.5 scores 0.75, a perfect read-out 1; NaN when one class is empty.
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
    p_yes: float


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


P_YES_CLIP = 1e-6  # log-likelihood of a certain, wrong P(yes): log(1e-6) = -13.8 instead of -inf


def _correct_and_p_yes(results: Sequence[ResultLike]) -> tuple[Tensor, Tensor]:
    correct = torch.tensor([bool(r.correct) for r in results], dtype=torch.float32)
    p_yes = torch.tensor([float(r.p_yes) for r in results], dtype=torch.float32)
    return correct, p_yes


@register_reward("brier_alignment")
def brier_alignment_reward(prompts: Sequence[str], completions: Sequence[str],
                           records: Sequence[ResultLike]) -> Tensor:
    """1 − (P(yes) − c)²: one minus the Brier score of the meta answer's P(yes) against correctness, in [0, 1]
    (NaN where P(yes) is NaN)."""
    correct, p_yes = _correct_and_p_yes(records)
    return 1.0 - (p_yes - correct).square()


@register_reward("log_likelihood_alignment")
def log_likelihood_alignment_reward(prompts: Sequence[str], completions: Sequence[str],
                                    records: Sequence[ResultLike]) -> Tensor:
    """c·log P(yes) + (1 − c)·log(1 − P(yes)), in nats, P(yes) clipped to [1e-6, 1 − 1e-6] (NaN stays NaN)."""
    correct, p_yes = (t.double() for t in _correct_and_p_yes(records))  # 1 - 1e-6 is not exact in float32
    p_yes = p_yes.clamp(P_YES_CLIP, 1.0 - P_YES_CLIP)
    return (correct * p_yes.log() + (1.0 - correct) * (1.0 - p_yes).log()).float()


@register_reward("esma_brier")
def esma_brier_reward(prompts: Sequence[str], completions: Sequence[str], records: Sequence[ResultLike]) -> Tensor:
    """c + 1 − (P(yes) − c)²: ESMA's joint reward with the Brier alignment in place of 1[c = y], in [0, 2]."""
    return correctness_reward(prompts, completions, records) + brier_alignment_reward(prompts, completions, records)


def _rank_shares(correct: Tensor, p_yes: Tensor) -> Tensor:
    """Each row's share of the AUROC of ``p_yes`` for ``correct`` (mean over rows = AUROC); NaN rows and
    one-class sets give NaN."""
    out = torch.full_like(p_yes, float("nan"))
    valid = ~torch.isnan(p_yes)
    right, wrong = valid & (correct == 1), valid & (correct == 0)
    if not right.any() or not wrong.any():
        return out
    # beats[i, j] = 1 when right answer i out-ranks wrong answer j, ½ on a tie
    diff = p_yes[right][:, None] - p_yes[wrong][None, :]
    beats = (diff > 0).float() + 0.5 * (diff == 0).float()
    out[right] = beats.mean(1)
    out[wrong] = beats.mean(0)
    return out


@register_reward("auroc_alignment")
def auroc_alignment_reward(prompts: Sequence[str], completions: Sequence[str],
                           records: Sequence[ResultLike]) -> Tensor:
    """Each question's share of AUROC₂(P(yes), correct) over the member's questions (mean = the AUROC₂, in
    [0, 1]); NaN when P(yes) is NaN or every answer is right (or every one wrong)."""
    correct, p_yes = _correct_and_p_yes(records)
    return _rank_shares(correct, p_yes)


@register_reward("esma_auroc")
def esma_auroc_reward(prompts: Sequence[str], completions: Sequence[str], records: Sequence[ResultLike]) -> Tensor:
    """c + the question's AUROC₂ share: accuracy plus discrimination (mean in [0, 2]); NaN where the AUROC
    share is."""
    return correctness_reward(prompts, completions, records) + auroc_alignment_reward(prompts, completions, records)


@register_reward("balanced_brier_alignment")
def balanced_brier_alignment_reward(prompts: Sequence[str], completions: Sequence[str],
                                    records: Sequence[ResultLike]) -> Tensor:
    """(1 − (P(yes) − c)²) · n / (2 n_c): the Brier alignment with right and wrong answers weighing half each
    (mean 1 − (Brier₁ + Brier₀) / 2, in [0, 1]); NaN for NaN P(yes) and when one class is empty."""
    correct, p_yes = _correct_and_p_yes(records)
    valid = ~torch.isnan(p_yes)
    counts = {c: int((valid & (correct == c)).sum()) for c in (0.0, 1.0)}
    if not all(counts.values()):
        return torch.full_like(p_yes, float("nan"))
    weight = torch.where(correct == 1, valid.sum() / (2 * counts[1.0]), valid.sum() / (2 * counts[0.0]))
    return weight * (1.0 - (p_yes - correct).square())


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
