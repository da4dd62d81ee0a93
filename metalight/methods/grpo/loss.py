"""GRPO's loss family as pure functions: every ``loss_type`` of TRL 1.16's ``GRPOTrainer._compute_loss`` with
the options around it (sequence-level importance sampling, two-sided clipping ``delta``, the bias-corrected
KL, entropy masking, off-policy sequence masking), written to give TRL's numbers (parity tested against the
installed TRL in ``tests/methods/grpo/test_grpo_trl_parity.py``).

Shapes: ``[R]`` is one value per completion (R rows); ``[R, C]`` is per completion token, left-aligned, with
``mask`` 1 on the tokens that enter the loss. With ``importance_sampling_level="sequence"`` the ratio ρ is
``[R, 1]`` and broadcasts over tokens.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]
ImportanceSamplingLevel = Literal["token", "sequence"]
LOSS_TYPES: tuple[str, ...] = get_args(LossType)
CLIPPED = ("grpo", "bnpo", "dr_grpo", "dapo", "luspo")  # the PPO-clipped surrogate, told apart by aggregation


@dataclass(frozen=True)
class LossSettings:
    """The loss fields of TRL 1.16's ``GRPOConfig``, with its names and defaults (see docs/grpo.md's table).

    ``epsilon_high`` ``None`` means ``epsilon`` (the ratio's upper clip), except for ``cispo``, where it is
    the absolute cap of ρ and must be set. ``top_entropy_quantile`` 1.0 keeps every token; ``delta`` /
    ``off_policy_mask_threshold`` ``None`` turn two-sided clipping / off-policy sequence masking off.
    """

    loss_type: LossType = "dapo"
    epsilon: float = 0.2
    epsilon_high: float | None = None
    delta: float | None = None
    beta: float = 0.0
    use_bias_correction_kl: bool = True
    importance_sampling_level: ImportanceSamplingLevel = "token"
    sapo_temperature_neg: float = 1.05
    sapo_temperature_pos: float = 1.0
    vespo_k_pos: float = 2.0
    vespo_lambda_pos: float = 3.0
    vespo_k_neg: float = 3.0
    vespo_lambda_neg: float = 2.0
    top_entropy_quantile: float = 1.0
    off_policy_mask_threshold: float | None = None

    @property
    def upper(self) -> float:
        """ε_high as TRL uses it: ``epsilon_high``, or ``epsilon`` when unset."""
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    def problems(self) -> list[str]:
        """What is wrong with these settings, one phrase per problem naming the key (empty when valid)."""
        found = []
        if self.loss_type not in LOSS_TYPES:
            found.append(f"loss_type {self.loss_type!r} is not one of {', '.join(LOSS_TYPES)}")
        if self.importance_sampling_level not in get_args(ImportanceSamplingLevel):
            found.append(
                f"importance_sampling_level {self.importance_sampling_level!r} is not 'token' or 'sequence'"
            )
        elif self.loss_type == "luspo" and self.importance_sampling_level != "sequence":
            found.append(
                "loss_type 'luspo' needs importance_sampling_level: sequence (it scales the sequence ratio "
                "by the length)"
            )
        if self.loss_type == "cispo" and self.epsilon_high is None:
            found.append("loss_type 'cispo' needs epsilon_high, the absolute cap of the ratio (ScaleRL: 5.0)")
        if self.epsilon <= 0 or (self.epsilon_high is not None and self.epsilon_high <= 0):
            found.append("epsilon and epsilon_high must be > 0")
        if self.delta is not None and self.delta <= 1:
            found.append(
                f"delta must be > 1 (an upper bound of the ratio; INTELLECT-2 uses > 1 + epsilon), "
                f"got {self.delta}"
            )
        if self.beta < 0:
            found.append(f"beta must be >= 0, got {self.beta}")
        if not 0.0 <= self.top_entropy_quantile <= 1.0:
            found.append(f"top_entropy_quantile must be in [0, 1], got {self.top_entropy_quantile}")
        if self.off_policy_mask_threshold is not None and self.off_policy_mask_threshold < 0:
            found.append(f"off_policy_mask_threshold must be >= 0, got {self.off_policy_mask_threshold}")
        if min(self.sapo_temperature_neg, self.sapo_temperature_pos) <= 0:
            found.append("sapo_temperature_neg and sapo_temperature_pos must be > 0")
        return found


def k3_kl(logps: Tensor, ref_logps: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(π_θ ‖ π_ref): exp(ref − logp) − (ref − logp) − 1 (≥ 0)."""
    diff = ref_logps - logps
    return torch.exp(diff) - diff - 1


def log_importance_weights(log_ratio: Tensor, mask: Tensor, level: ImportanceSamplingLevel) -> Tensor:
    """log ρ: the per-token log-ratio [R, C] (``token``), or its masked mean per sequence [R, 1]
    (``sequence``, GSPO: ρ_seq = exp(Σ_t m_t log ρ_t / Σ_t m_t))."""
    if level == "token":
        return log_ratio
    return ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)


def high_entropy_mask(
    entropies: Tensor, mask: Tensor, quantile: float, pooled: Tensor | None = None
) -> Tensor:
    """Entropy masking (Beyond the 80/20 Rule): 1 on the masked tokens whose entropy is at least the
    (1 − ``quantile``) quantile of the entropies of all masked tokens (``pooled``: those of every process;
    default this batch's), as a bool [R, C]."""
    pooled = entropies[mask.bool()].float() if pooled is None else pooled
    if pooled.numel() == 0:
        return torch.zeros_like(entropies, dtype=torch.bool)
    threshold = torch.quantile(pooled, 1 - quantile)
    return ((entropies * mask.float()) >= threshold) & mask.bool()


def off_policy_mask(
    advantages: Tensor, logps: Tensor, old_logps: Tensor, mask: Tensor, threshold: float
) -> Tensor:
    """Off-policy sequence mask (DeepSeek-V3.2): keep a sequence [R, 1] unless its advantage is negative and
    the masked mean of log π_old − log π_θ exceeds ``threshold``."""
    kl = torch.nan_to_num(old_logps - logps.detach(), nan=0.0)
    seq_kl = (kl * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)
    return ((advantages >= 0) | (seq_kl <= threshold)).to(mask.dtype)


@torch.no_grad()
def gamma_weights(
    advantages: Tensor,
    log_ratio: Tensor,
    mask: Tensor,
    k_pos: float,
    lambda_pos: float,
    k_neg: float,
    lambda_neg: float,
) -> Tensor:
    """VESPO's sequence weight φ(w) = e^λ · w^k · e^(−λw) [R, 1] (φ(1) = 1, detached),
    w = exp(Σ_t m_t log ρ_t) the sequence ratio (log-ratios clamped to ±20, log w to [log 1e-8, 20]); (k, λ)
    by the advantage's sign."""
    lower = math.log(1e-8)
    log_w = torch.clamp((torch.clamp(log_ratio, -20.0, 20.0) * mask).sum(-1, keepdim=True), lower, 20.0)
    nonneg = advantages >= 0
    k = torch.where(nonneg, k_pos, k_neg)
    lam = torch.where(nonneg, lambda_pos, lambda_neg).clamp(min=1e-4)
    return torch.exp(lam + k * log_w - lam * torch.exp(log_w)).nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


@dataclass
class Surrogate:
    """Inputs every per-token objective reads: log π_θ [R, C], log ρ_t [R, C], ρ ([R, C] or [R, 1]), the
    advantages [R, 1] and the loss mask [R, C]."""

    logps: Tensor
    log_ratio: Tensor
    ratio: Tensor
    advantages: Tensor
    mask: Tensor


def _clipped(s: Surrogate, cfg: LossSettings) -> tuple[Tensor, dict[str, Tensor]]:
    """−min(ρ' A, clip(ρ, 1−ε, 1+ε_high) A), ρ' = min(ρ, δ) with two-sided clipping (INTELLECT-2), else ρ."""
    clipped = torch.clamp(s.ratio, 1 - cfg.epsilon, 1 + cfg.upper)
    ratio = s.ratio if cfg.delta is None else torch.clamp(s.ratio, max=cfg.delta)
    low = (ratio < 1 - cfg.epsilon) & (s.advantages < 0)
    high = (ratio > 1 + cfg.upper) & (s.advantages > 0)
    flags = {
        "clip_ratio/low_mean": low.float(),
        "clip_ratio/high_mean": high.float(),
        "clip_ratio/region_mean": (low | high).float(),
    }
    return -torch.min(ratio * s.advantages, clipped * s.advantages), flags


def _cispo(s: Surrogate, cfg: LossSettings) -> tuple[Tensor, dict[str, Tensor]]:
    """CISPO (MiniMax-M1): −sg(min(ρ, ε_high)) · A · log π_θ, the clipped ratio a constant weight."""
    flags = {"cispo_clip_ratio": ((s.ratio > cfg.upper) & (s.advantages > 0)).float()}
    return -torch.clamp(s.ratio, max=cfg.upper).detach() * s.advantages * s.logps, flags


def _sapo(s: Surrogate, cfg: LossSettings) -> tuple[Tensor, dict[str, Tensor]]:
    """SAPO: −σ(τ(ρ − 1)) · 4/τ · A, τ = ``sapo_temperature_pos`` where A > 0, else
    ``sapo_temperature_neg``."""
    tau = torch.where(s.advantages > 0, cfg.sapo_temperature_pos, cfg.sapo_temperature_neg)
    return -torch.sigmoid(tau * (s.ratio - 1)) * 4 / tau * s.advantages, {}


def _vespo(s: Surrogate, cfg: LossSettings) -> tuple[Tensor, dict[str, Tensor]]:
    """VESPO: −φ(w) · A · log π_θ with the detached gamma weight φ of the sequence ratio
    (:func:`gamma_weights`)."""
    phi = gamma_weights(
        s.advantages,
        s.log_ratio,
        s.mask,
        cfg.vespo_k_pos,
        cfg.vespo_lambda_pos,
        cfg.vespo_k_neg,
        cfg.vespo_lambda_neg,
    )
    return -phi * s.advantages * s.logps, {"vespo/phi_seq_mean": phi}


@dataclass(frozen=True)
class Normalisers:
    """What the token-sum aggregations divide by: ``max_completion_length`` (dr_grpo); the active loss tokens
    of the whole generation batch summed over all processes, the process count and ``steps_per_generation``
    (dapo, cispo, vespo: Σ ℓ m / (tokens / processes / steps_per_generation) per micro-batch, before the
    trainer divides by the accumulation steps, is TRL's normaliser)."""

    max_completion_length: int
    global_active_tokens: float
    num_processes: int = 1
    steps_per_generation: int = 1


def _sequence_mean(loss: Tensor, mask: Tensor, norm: Normalisers) -> Tensor:
    return ((loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()


def _token_mean(loss: Tensor, mask: Tensor, norm: Normalisers) -> Tensor:
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def _max_length(loss: Tensor, mask: Tensor, norm: Normalisers) -> Tensor:
    return (loss * mask).sum() / (loss.size(0) * norm.max_completion_length)


def _global_tokens(loss: Tensor, mask: Tensor, norm: Normalisers) -> Tensor:
    tokens = max(norm.global_active_tokens, 1.0) / norm.num_processes / norm.steps_per_generation
    return (loss * mask).sum() / tokens


def _sequence_sum(loss: Tensor, mask: Tensor, norm: Normalisers) -> Tensor:
    return (loss * mask).sum(-1).mean()


Objective = Callable[[Surrogate, LossSettings], tuple[Tensor, dict[str, Tensor]]]
Aggregation = Callable[[Tensor, Tensor, Normalisers], Tensor]

LOSS_VARIANTS: dict[str, tuple[Objective, Aggregation]] = {
    "grpo": (_clipped, _sequence_mean),  # mean over sequences of the token mean (DeepSeekMath)
    "bnpo": (_clipped, _token_mean),  # token mean over the local batch
    "dr_grpo": (_clipped, _max_length),  # token sum / (rows × max_completion_length) (Dr. GRPO)
    "dapo": (
        _clipped,
        _global_tokens,
    ),  # token sum / active tokens of the generation batch per process (DAPO)
    "luspo": (_clipped, _sequence_sum),  # mean over sequences of the token sum: length-weighted GSPO (LUSPO)
    "cispo": (_cispo, _global_tokens),  # clipped-IS-weight policy gradient (MiniMax-M1)
    "sapo": (_sapo, _sequence_mean),  # soft sigmoid gate instead of the hard clip (SAPO)
    "vespo": (_vespo, _global_tokens),  # gamma-weighted sequence ratio (VESPO)
}


@dataclass
class LossTerms:
    """The scalar loss and what the metrics are computed from: ``ratio`` ρ ([R, C] or [R, 1]), ``kl`` (the KL
    term as added to the loss, bias-corrected when set; [R, C] or ``None`` when β = 0) and ``flags``, the
    per-token or per-sequence values TRL averages into its metrics (``clip_ratio/*``, ``cispo_clip_ratio``,
    ``vespo/phi_seq_mean``)."""

    loss: Tensor
    ratio: Tensor
    kl: Tensor | None
    flags: dict[str, Tensor]


def grpo_loss(
    logps: Tensor,
    old_logps: Tensor | None,
    ref_logps: Tensor | None,
    advantages: Tensor,
    mask: Tensor,
    settings: LossSettings,
    norm: Normalisers,
    entropy_mask: Tensor | None = None,
) -> LossTerms:
    """The GRPO loss of one micro-batch, as TRL's ``_compute_loss``:

    ρ = exp(log π_θ − log π_old) per token or per sequence; ℓ = objective(ρ, A) (``LOSS_VARIANTS``), times the
    off-policy sequence mask and the entropy mask when set; + β · k3(π_θ ‖ π_ref) (· ρ with
    ``use_bias_correction_kl``); aggregated by ``loss_type``. ``old_logps`` ``None`` means on-policy: π_old is
    log π_θ detached, so ρ = 1 with the policy gradient's derivative. ``ref_logps`` is needed when β ≠ 0. The
    trainer divides the result by the gradient-accumulation steps (Lightning does).
    """
    problems = settings.problems()
    if problems:
        raise ValueError("; ".join(problems))
    advantages = advantages.unsqueeze(1) if advantages.dim() == 1 else advantages
    mask = mask.to(logps.dtype)
    old = logps.detach() if old_logps is None else old_logps
    log_ratio = logps - old
    ratio = torch.exp(log_importance_weights(log_ratio, mask, settings.importance_sampling_level))
    kl = None
    if settings.beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta != 0 needs reference log-probabilities")
        kl = k3_kl(logps, ref_logps)
        if settings.use_bias_correction_kl:
            kl = kl * ratio
    objective, aggregate = LOSS_VARIANTS[settings.loss_type]
    per_token, flags = objective(Surrogate(logps, log_ratio, ratio, advantages, mask), settings)
    if settings.off_policy_mask_threshold is not None:
        per_token = per_token * off_policy_mask(
            advantages, logps, old, mask, settings.off_policy_mask_threshold
        )
    if entropy_mask is not None:
        per_token = per_token * entropy_mask
    if kl is not None:
        per_token = per_token + settings.beta * kl
    return LossTerms(aggregate(per_token, mask, norm), ratio, kl, flags)


def masked_sum_count(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(sum, count) for TRL's global masked mean: over the masked tokens of a [R, C] tensor, over all rows of
    a [R, 1] one (sum the pairs over processes, then divide)."""
    if values.shape[1] == 1:
        return values.sum(), torch.tensor(float(values.shape[0]), device=values.device)
    return (values * mask).sum(), mask.sum().float()


def sequence_means(values: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence mean [R] of a [R, C] tensor over the mask (NaN for a row with no masked token), or the
    [R, 1] values themselves, as TRL's ``masked_seq_mean``."""
    if values.shape[1] == 1:
        return values.squeeze(1)
    return (values * mask).sum(-1) / mask.sum(-1)
