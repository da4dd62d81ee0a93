"""GRPO's math as pure functions: group advantages, the clipped surrogate with a k3 KL term, and the
per-``loss_type`` aggregations, each written to give TRL 1.16's numbers (``GRPOTrainer._compute_loss`` and the
advantage block of ``_generate_and_score_completions``; the parity is tested against the installed TRL).

Shapes: ``[R]`` is one value per completion (R = prompts × G, prompt-major); ``[R, C]`` is per completion
token, left-aligned, with ``mask`` 1 on real completion tokens (the EOS that ended a completion included).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
ScaleRewards = Literal["group", "batch", "none"]
Aggregation = Literal["sum_then_normalize", "normalize_then_sum"]
STD_EPS = 1e-4  # TRL adds 1e-4 to the std, not 1e-8


def nanstd(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Bessel-corrected standard deviation ignoring NaN (NaN where fewer than two values), as TRL's ``nanstd``."""
    mean = torch.nanmean(x, dim=dim, keepdim=True)
    variance = torch.nanmean((x - mean) ** 2, dim=dim, keepdim=True)
    count = (~torch.isnan(x)).sum(dim=dim, keepdim=True)
    variance = variance * torch.where(count > 1, count / (count - 1), torch.full_like(variance, float("nan")))
    std = torch.sqrt(variance)
    if keepdim:
        return std
    return std.squeeze() if dim is None else std.squeeze(dim)


@dataclass
class Advantages:
    """Per-completion advantages ``values`` [R], the combined ``rewards`` [R] (weighted sum of the reward
    functions) and ``std_is_zero`` [R] (the std the advantage was scaled by was 0: no learning signal)."""

    values: Tensor
    rewards: Tensor
    std_is_zero: Tensor


def group_advantages(rewards_per_func: Tensor, weights: Tensor, num_generations: int,
                     scale_rewards: ScaleRewards = "group",
                     aggregation: Aggregation = "sum_then_normalize") -> Advantages:
    """GRPO advantages from a [R, F] reward table (F reward functions, weights [F]).

    ``sum_then_normalize`` (default): r = Σ_f w_f r_f; A = r − mean_group(r), divided by (std + 1e-4) where std is
    the group's (``group``), the whole batch's (``batch``), or not divided at all (``none``, Dr. GRPO).
    ``normalize_then_sum`` (GDPO): each function is normalised within its group first, the weighted sum is then
    normalised over the batch. A NaN reward means "not applicable": rows where every function is NaN get A = 0.
    """
    rows, num_funcs = rewards_per_func.shape
    if rows % num_generations:
        raise ValueError(f"{rows} rewards do not split into groups of num_generations={num_generations}")
    weights = weights.to(rewards_per_func)
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    if aggregation == "sum_then_normalize":
        rewards = (rewards_per_func * weights).nansum(dim=1)
        rewards[unscorable] = torch.nan
        grouped = rewards.view(-1, num_generations)
        mean = torch.nanmean(grouped, dim=1).repeat_interleave(num_generations)
        if scale_rewards in ("group", "none"):
            std = nanstd(grouped, dim=1).repeat_interleave(num_generations)
        elif scale_rewards == "batch":
            std = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
        else:
            raise ValueError(f"scale_rewards must be 'group', 'batch' or 'none', got {scale_rewards!r}")
        advantages = rewards - mean
        if scale_rewards != "none":
            advantages = advantages / (std + STD_EPS)
    elif aggregation == "normalize_then_sum":
        grouped = rewards_per_func.view(-1, num_generations, num_funcs)
        mean_k = torch.nanmean(grouped, dim=1, keepdim=True)
        std_k = nanstd(grouped, dim=1, keepdim=True)
        normalised = ((grouped - mean_k) / (std_k + STD_EPS)).view(-1, num_funcs)
        rewards = (normalised * weights).nansum(dim=1)
        rewards[unscorable] = torch.nan
        std = nanstd(rewards).expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
        advantages = (rewards - torch.nanmean(rewards)) / (std + STD_EPS)
    else:
        raise ValueError(f"aggregation must be 'sum_then_normalize' or 'normalize_then_sum', got {aggregation!r}")
    std_is_zero = torch.isclose(std, torch.zeros_like(std))
    combined = (rewards_per_func * weights).nansum(dim=1)
    combined[unscorable] = torch.nan
    return Advantages(torch.nan_to_num(advantages, nan=0.0), combined, std_is_zero)


def k3_kl(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(π_θ ‖ π_ref): exp(ref − logp) − (ref − logp) − 1 (≥ 0)."""
    diff = ref_logps - logps
    return torch.exp(diff) - diff - 1


def clipped_surrogate(logps: Tensor, old_logps: Tensor, advantages: Tensor, epsilon_low: float,
                      epsilon_high: float) -> tuple[Tensor, Tensor]:
    """PPO's per-token loss −min(ρA, clip(ρ, 1−ε_low, 1+ε_high)A) with ρ = exp(logp − old_logp); returns
    (loss [R, C], ρ [R, C]). ``advantages`` is [R] (broadcast over tokens)."""
    ratio = torch.exp(logps - old_logps)
    advantages = advantages.unsqueeze(1)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    return -torch.min(ratio * advantages, clipped * advantages), ratio


@dataclass(frozen=True)
class Normalisers:
    """What the token-sum aggregations divide by: ``max_completion_length`` (dr_grpo), the number of active
    completion tokens in the generation batch summed over all processes (dapo), and the process count."""

    max_completion_length: int
    global_active_tokens: float
    num_processes: int = 1


def _grpo(per_token: Tensor, mask: Tensor, norm: Normalisers) -> Tensor:
    return ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()


def _bnpo(per_token: Tensor, mask: Tensor, norm: Normalisers) -> Tensor:
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def _dr_grpo(per_token: Tensor, mask: Tensor, norm: Normalisers) -> Tensor:
    return (per_token * mask).sum() / (per_token.size(0) * norm.max_completion_length)


def _dapo(per_token: Tensor, mask: Tensor, norm: Normalisers) -> Tensor:
    return (per_token * mask).sum() / (max(norm.global_active_tokens, 1.0) / norm.num_processes)


LOSS_AGGREGATIONS: dict[str, Callable[[Tensor, Tensor, Normalisers], Tensor]] = {
    "grpo": _grpo,        # mean over sequences of the per-sequence token mean (DeepSeekMath)
    "bnpo": _bnpo,        # token mean over the local batch
    "dr_grpo": _dr_grpo,  # token sum / (sequences × max_completion_length) (Dr. GRPO)
    "dapo": _dapo,        # token sum / active tokens of the whole generation batch per process (DAPO)
}


@dataclass
class LossTerms:
    """The scalar loss and the per-token pieces the metrics are computed from (all [R, C] but ``loss``)."""

    loss: Tensor
    ratio: Tensor
    kl: Tensor | None


def grpo_loss(logps: Tensor, old_logps: Tensor | None, ref_logps: Tensor | None, advantages: Tensor, mask: Tensor,
              loss_type: LossType, norm: Normalisers, epsilon_low: float = 0.2, epsilon_high: float | None = None,
              beta: float = 0.0) -> LossTerms:
    """GRPO loss of one batch: clipped surrogate (+ β·k3 KL per token when β ≠ 0), aggregated by ``loss_type``.

    ``old_logps`` ``None`` means on-policy (μ = 1): the ratio is exp(logp − logp.detach()) = 1 with the policy
    gradient's derivative. ``ref_logps`` is needed when β ≠ 0. The loss is per optimizer step; gradient
    accumulation divides it further (Lightning does).
    """
    if loss_type not in LOSS_AGGREGATIONS:
        raise ValueError(f"loss_type must be one of {sorted(LOSS_AGGREGATIONS)}, got {loss_type!r}")
    old = logps.detach() if old_logps is None else old_logps
    per_token, ratio = clipped_surrogate(logps, old, advantages, epsilon_low,
                                         epsilon_low if epsilon_high is None else epsilon_high)
    kl = None
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta != 0 needs reference log-probabilities")
        kl = k3_kl(logps, ref_logps)
        per_token = per_token + beta * kl
    mask = mask.to(per_token.dtype)
    return LossTerms(LOSS_AGGREGATIONS[loss_type](per_token, mask, norm), ratio, kl)


def clip_fractions(ratio: Tensor, advantages: Tensor, mask: Tensor, epsilon_low: float,
                   epsilon_high: float) -> dict[str, Tensor]:
    """Per-token clipping indicators (TRL's ``clip_ratio/*``): ``low`` ρ < 1−ε_low with A < 0, ``high``
    ρ > 1+ε_high with A > 0, ``region`` either — as [R, C] floats (average them over ``mask``)."""
    advantages = advantages.unsqueeze(1)
    low = (ratio < 1 - epsilon_low) & (advantages < 0)
    high = (ratio > 1 + epsilon_high) & (advantages > 0)
    return {"low": low.float(), "high": high.float(), "region": (low | high).float()}
