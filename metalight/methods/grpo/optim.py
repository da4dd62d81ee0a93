"""GRPO's default optimizer: AdamW with TRL's ``GRPOConfig`` learning rate."""

from __future__ import annotations

from metalight.methods.optim import FusedAdamW


class GRPOAdamW(FusedAdamW):
    """AdamW with GRPO's learning rate 1e-6 and no weight decay (TRL's ``GRPOConfig`` defaults; arguments:
    :class:`~metalight.methods.optim.FusedAdamW`)."""

    def __init__(
        self,
        params,
        lr: float = 1e-6,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        fused: bool | None = None,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused)
