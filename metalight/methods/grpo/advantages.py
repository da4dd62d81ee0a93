"""GRPO advantages as pure functions, written to give TRL 1.16's numbers (the advantage block of
``GRPOTrainer._generate_and_score_completions``; tested against TRL's formula and its ``nanstd``).

Shapes: ``[R]`` is one value per completion (R = prompts × G, prompt-major); ``[R, F]`` one value per
completion and reward function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

ScaleRewards = Literal["group", "batch", "none"]
MultiObjectiveAggregation = Literal["sum_then_normalize", "normalize_then_sum"]
STD_EPS = 1e-4  # TRL adds 1e-4 to the std, not 1e-8


def nanstd(x: Tensor, dim: int | None = None, keepdim: bool = False) -> Tensor:
    """Bessel-corrected standard deviation ignoring NaN (NaN where fewer than two values), as TRL's
    ``nanstd``."""
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


def group_advantages(
    rewards_per_func: Tensor,
    weights: Tensor,
    num_generations: int,
    scale_rewards: ScaleRewards = "group",
    aggregation: MultiObjectiveAggregation = "sum_then_normalize",
) -> Advantages:
    """GRPO advantages from a [R, F] reward table (F reward functions, weights [F]).

    ``sum_then_normalize`` (default): r = Σ_f w_f r_f; A = r − mean_group(r), divided by (std + 1e-4) where
    std is the group's (``group``), the whole batch's (``batch``), or not divided at all (``none``, Dr. GRPO).
    ``normalize_then_sum`` (GDPO): each function is normalised within its group first, the weighted sum is
    then normalised over the batch. A NaN reward means "not applicable": rows where every function is NaN get
    A = 0.
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
        raise ValueError(
            f"aggregation must be 'sum_then_normalize' or 'normalize_then_sum', got {aggregation!r}"
        )
    std_is_zero = torch.isclose(std, torch.zeros_like(std))
    combined = (rewards_per_func * weights).nansum(dim=1)
    combined[unscorable] = torch.nan
    return Advantages(torch.nan_to_num(advantages, nan=0.0), combined, std_is_zero)
