"""The ES step's arithmetic: member seeds, fitness shaping, and the gradient written into ``p.grad``.

Paper update (ESMA / "ES at scale"): θ ← θ + α/N · Σᵢ zᵢ εᵢ with z the z-scored fitness. Here the
gradient g = −(1/N) Σᵢ zᵢ sᵢ εᵢ (sᵢ = ±1, the antithetic sign) is summed in float32, goes into ``p.grad``
and a torch optimizer steps it: SGD with lr = α gives the paper's update; Adam and friends work unchanged.
:func:`add_update_in_place` is upstream's arithmetic instead (``es_update: in_place``): each member's term is
rounded to the parameter dtype and added to the weights one member at a time.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from metalight.errors import ConfigError
from metalight.methods.esma.noise import NoiseScheme, Scratch

log = logging.getLogger(__name__)

Shaping = Literal["zscore", "rank"]
UpdateMode = Literal["float32_sum", "in_place"]
STD_EPS = 1e-8


@dataclass(frozen=True)
class Member:
    """One population member: the seed of its noise and the sign it is applied with (antithetic pairs
    share a seed and have opposite signs)."""

    seed: int
    sign: int = 1


def member_seeds(run_seed: int, step: int, population_size: int, antithetic: bool = False) -> list[Member]:
    """The population of iteration ``step``: seeds drawn from (run seed, step), so a resumed run replays
    the same noise. With ``antithetic``, members 2k and 2k+1 share a seed with signs +1 / −1."""
    if antithetic and population_size % 2:
        raise ConfigError(f"population_size: {population_size} must be even with antithetic: true")
    count = population_size // 2 if antithetic else population_size
    seeds = np.random.SeedSequence([int(run_seed), int(step)]).generate_state(count, dtype=np.uint32).tolist()
    if antithetic:
        return [Member(int(s), sign) for s in seeds for sign in (1, -1)]
    return [Member(int(s)) for s in seeds]


def shard(items: Sequence, rank: int, world_size: int) -> list:
    """Round-robin share of ``items`` for ``rank``: items rank, rank + W, rank + 2W, ..."""
    return list(items[rank::world_size])


def shape_fitness(
    fitness: Tensor, shaping: Shaping = "zscore", dtype: torch.dtype = torch.float64
) -> tuple[Tensor, int]:
    """Weights for the update from member fitnesses, and how many were NaN (those get weight 0).

    ``zscore`` (upstream): (R − mean R) / (std R + 1e-8), std unbiased (N − 1), over the finite members.
    ``rank``: centred ranks in [−0.5, 0.5] (ties share their mean rank), robust to outliers.
    Computed in ``dtype`` (upstream: float32). Raises ``ValueError`` when every fitness is NaN.
    """
    fitness = fitness.to(dtype)
    finite = torch.isfinite(fitness)
    missing = int((~finite).sum())
    if not finite.any():
        raise ValueError(
            "every population member's reward is NaN: the evaluation produced no usable reward "
            "(check the reward function and that the questions have gold answers)"
        )
    values = fitness[finite]
    weights = torch.zeros_like(fitness)
    if shaping == "zscore":
        std = values.std(unbiased=True) if values.numel() > 1 else values.new_tensor(0.0)
        weights[finite] = (values - values.mean()) / (std + STD_EPS)
    elif shaping == "rank":
        if values.numel() > 1:
            order = values.argsort(stable=True)
            ranks = torch.empty_like(values)
            ranks[order] = torch.arange(values.numel(), dtype=values.dtype, device=values.device)
            for value in values.unique():  # ties share their mean rank
                tie = values == value
                ranks[tie] = ranks[tie].mean()
            weights[finite] = ranks / (values.numel() - 1) - 0.5
    else:
        raise ConfigError(f"fitness_shaping: unknown {shaping!r}; use zscore or rank")
    return weights, missing


@torch.no_grad()
def write_es_gradient(scheme: NoiseScheme, members: Sequence[Member], weights: Tensor) -> float:
    """Set ``p.grad = −(1/N) Σᵢ wᵢ sᵢ εᵢ`` for every perturbed parameter (N = len(members)); members with
    weight 0 are skipped. Returns ‖g‖₂ over all perturbed parameters."""
    n = len(members)
    active = [(m, float(w)) for m, w in zip(members, weights.tolist()) if w != 0.0]
    seeds = [m.seed for m, _ in active]
    coefficients = [-w * m.sign / n for m, w in active]
    norm_sq = 0.0
    if not active:
        for index in scheme.perturbed_indices():
            param = scheme.selected[index].param
            param.grad = torch.zeros_like(param)
        return 0.0
    for index, total in scheme.accumulate(seeds, coefficients):
        param = scheme.selected[index].param
        norm_sq += torch.linalg.vector_norm(total).item() ** 2
        param.grad = total.to(param.dtype)
    return math.sqrt(norm_sq)


@torch.no_grad()
def add_update_in_place(scheme: NoiseScheme, members: Sequence[Member], weights: Tensor, lr: float) -> float:
    """Upstream ESMA's update (``esma/evolution.py::apply_evolution``): θ += (wᵢ sᵢ · lr / N) εᵢ for each
    member in order, every term computed and added in the parameter dtype, in place; the scale is a float32
    tensor on the parameter's device, as upstream's z-scores are. In bfloat16 each addition rounds (on a tiny
    model the result differs from the float32 sum by up to half the update's size): use it to reproduce
    upstream's weights bit for bit. Returns ‖Δθ‖₂ over the perturbed parameters."""
    n = len(members)
    scales = weights.float() * torch.tensor(
        [float(m.sign) for m in members], dtype=torch.float32, device=weights.device
    )
    active = [i for i, w in enumerate(scales.tolist()) if w != 0.0]
    if not active:
        return 0.0
    streams = [scheme.iter_noise(members[i].seed, Scratch()) for i in active]
    norm_sq = 0.0
    for items in zip(*streams):  # tensor by tensor, the members in order: each weight sees upstream's adds
        param = scheme.selected[items[0][0]].param
        before = param.detach().clone()
        member_scales = scales.to(param.device)
        for (_, eps), i in zip(items, active):
            param.data.add_(eps.mul_(member_scales[i] * lr / n))
        norm_sq += (param.detach().double() - before.double()).square().sum().item()
    return math.sqrt(norm_sq)
