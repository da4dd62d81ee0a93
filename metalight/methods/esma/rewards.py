"""ESMA's rewards (:data:`ESMA_REWARDS`, on the signature every method's rewards share:
``f(prompts, completions, records, **columns) -> Tensor[R]``, :mod:`metalight.methods.rewards`), and a
member's fitness.

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

``esma`` = c + 1[c = y]. ESMA scores a member's answers to the iteration's questions: the prompts and
completions are their direct prompts and answers, the records the questions, and the columns (keyword
arguments, tensors of shape [R]; see :mod:`metalight.methods.rewards`) what the dual-prompt evaluation
measured: ``correct``, ``said_yes`` and ``p_yes``. A member's fitness is the mean of its per-question rewards.
The rewards of every method (``alias_match``, ...) work here too; :data:`ESMA_REWARDS` adds these.

Continuous meta rewards (metalight's, beyond the paper): with p = P(yes), the first meta-answer token's
probability of yes against no (one forward pass, no meta generation needed), they score how well p predicts
c, so two members that give the same yes/no answers still get different fitness:

* ``brier_alignment`` = 1 − (p − c)²: one minus the Brier score, in [0, 1];
* ``log_likelihood_alignment`` = c·log p + (1 − c)·log(1 − p), p clipped to [1e-6, 1 − 1e-6] so that p = 0 or
  1 gives a finite −13.8 instead of −∞;
* ``esma_brier`` = c + ``brier_alignment``: ESMA's joint reward with the binary alignment replaced by the
  Brier one (the same range, [0, 2]).

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
from typing import Any

import torch
from torch import Tensor

from metalight.methods.rewards import RewardFn, score_reward
from metalight.metrics.registry import compute_values


def result_columns(results: Sequence[Any]) -> dict[str, Tensor]:
    """The columns ESMA hands its rewards from the evaluated answers (``SampleResult``): ``correct`` and
    ``said_yes`` (bool [R]) and ``p_yes`` (float32 [R], NaN where the tokenizer has no yes / no token)."""
    return {
        "correct": torch.tensor([bool(r.correct) for r in results], dtype=torch.bool),
        "said_yes": torch.tensor([bool(r.said_yes) for r in results], dtype=torch.bool),
        "p_yes": torch.tensor([float(r.p_yes) for r in results], dtype=torch.float32),
    }


def correctness_reward(
    prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any], *, correct: Tensor
) -> Tensor:
    """c: 1 when the direct answer is correct, else 0 (one value per question, float32)."""
    return correct.float()


def alignment_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    records: Sequence[Any],
    *,
    correct: Tensor,
    said_yes: Tensor,
) -> Tensor:
    """1[c = y]: 1 when the meta answer's yes/no matches the direct answer's correctness."""
    return (correct == said_yes).float()


def esma_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    records: Sequence[Any],
    *,
    correct: Tensor,
    said_yes: Tensor,
) -> Tensor:
    """ESMA's joint reward c + 1[c = y]: 2 correct-yes, 1 wrong-no, 1 correct-no, 0 wrong-yes."""
    return correct.float() + (correct == said_yes).float()


P_YES_CLIP = 1e-6  # log-likelihood of a certain, wrong P(yes): log(1e-6) = -13.8 instead of -inf


def brier_alignment_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    records: Sequence[Any],
    *,
    correct: Tensor,
    p_yes: Tensor,
) -> Tensor:
    """1 − (P(yes) − c)²: one minus the Brier score of the meta answer's P(yes) against correctness, in [0, 1]
    (NaN where P(yes) is NaN)."""
    return 1.0 - (p_yes - correct.float()).square()


def log_likelihood_alignment_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    records: Sequence[Any],
    *,
    correct: Tensor,
    p_yes: Tensor,
) -> Tensor:
    """c·log P(yes) + (1 − c)·log(1 − P(yes)), in nats, P(yes) clipped to [1e-6, 1 − 1e-6] (NaN stays NaN)."""
    c, p = (
        correct.double(),
        p_yes.double().clamp(P_YES_CLIP, 1.0 - P_YES_CLIP),
    )  # 1 - 1e-6 is not exact in float32
    return (c * p.log() + (1.0 - c) * (1.0 - p).log()).float()


def esma_brier_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    records: Sequence[Any],
    *,
    correct: Tensor,
    p_yes: Tensor,
) -> Tensor:
    """c + 1 − (P(yes) − c)²: ESMA's joint reward with the Brier alignment in place of 1[c = y], in [0, 2]."""
    return correct.float() + brier_alignment_reward(
        prompts, completions, records, correct=correct, p_yes=p_yes
    )


def _rank_shares(correct: Tensor, p_yes: Tensor) -> Tensor:
    """Each row's share of the AUROC of ``p_yes`` for ``correct`` (mean over rows = AUROC); NaN rows and
    one-class sets give NaN."""
    out = torch.full_like(p_yes, float("nan"))
    valid = ~torch.isnan(p_yes)
    right, wrong = valid & correct, valid & ~correct
    if not right.any() or not wrong.any():
        return out
    # beats[i, j] = 1 when right answer i out-ranks wrong answer j, ½ on a tie
    diff = p_yes[right][:, None] - p_yes[wrong][None, :]
    beats = (diff > 0).float() + 0.5 * (diff == 0).float()
    out[right] = beats.mean(1)
    out[wrong] = beats.mean(0)
    return out


def auroc_alignment_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    records: Sequence[Any],
    *,
    correct: Tensor,
    p_yes: Tensor,
) -> Tensor:
    """Each question's share of AUROC₂(P(yes), correct) over the member's questions (mean = the AUROC₂, in
    [0, 1]); NaN when P(yes) is NaN or every answer is right (or every one wrong)."""
    return _rank_shares(correct.bool(), p_yes)


def esma_auroc_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    records: Sequence[Any],
    *,
    correct: Tensor,
    p_yes: Tensor,
) -> Tensor:
    """c + the question's AUROC₂ share: accuracy plus discrimination (mean in [0, 2]); NaN where the AUROC
    share is."""
    return correct.float() + _rank_shares(correct.bool(), p_yes)


def balanced_brier_alignment_reward(
    prompts: Sequence[str],
    completions: Sequence[str],
    records: Sequence[Any],
    *,
    correct: Tensor,
    p_yes: Tensor,
) -> Tensor:
    """(1 − (P(yes) − c)²) · n / (2 n_c): the Brier alignment with right and wrong answers weighing half each
    (mean 1 − (Brier₁ + Brier₀) / 2, in [0, 1]); NaN for NaN P(yes) and when one class is empty."""
    c = correct.float()
    valid = ~torch.isnan(p_yes)
    counts = {label: int((valid & (c == label)).sum()) for label in (0.0, 1.0)}
    if not all(counts.values()):
        return torch.full_like(p_yes, float("nan"))
    weight = torch.where(c == 1, valid.sum() / (2 * counts[1.0]), valid.sum() / (2 * counts[0.0]))
    return weight * (1.0 - (p_yes - c).square())


ESMA_REWARDS: dict[str, RewardFn] = {
    "esma": esma_reward,
    "correctness": correctness_reward,
    "alignment": alignment_reward,
    "brier_alignment": brier_alignment_reward,
    "log_likelihood_alignment": log_likelihood_alignment_reward,
    "esma_brier": esma_brier_reward,
    "auroc_alignment": auroc_alignment_reward,
    "esma_auroc": esma_auroc_reward,
    "balanced_brier_alignment": balanced_brier_alignment_reward,
}

# the per-component means ESMA logs (train/<name>) and the registry metric each one is
SUMMARY = {"correctness": "accuracy", "alignment": "raw_alignment", "yes_ratio": "yes_ratio"}


def reward_summary(results: Sequence[Any]) -> dict[str, float]:
    """Mean correctness, alignment and yes ratio of ``results`` (the per-component numbers ESMA logs; NaN over
    no results), computed by the metric registry."""
    columns = result_columns(results)
    values = compute_values(
        {"correct": columns["correct"], "said_yes": columns["said_yes"]}, SUMMARY.values()
    )
    return {name: float(values[metric]) for name, metric in SUMMARY.items()}


def member_fitness(name: str, reward: RewardFn, records: Sequence[Any], results: Sequence[Any]) -> float:
    """A member's fitness: the mean of the reward over its evaluated questions (``records`` and their
    ``results``), checked like every reward (one finite value per question, or NaN: "not applicable", left
    out); NaN when no question has a value."""
    prompts = [getattr(r, "direct_prompt", "") for r in results]
    completions = [getattr(r, "direct_answer", "") for r in results]
    values = score_reward(name, reward, prompts, completions, records, **result_columns(results))
    values = values[~torch.isnan(values)]
    return values.mean().item() if values.numel() else float("nan")
