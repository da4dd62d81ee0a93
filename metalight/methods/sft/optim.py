"""SFT's default optimizer: AdamW with HF Trainer's defaults for SFT."""

from __future__ import annotations

from metalight.methods.optim import FusedAdamW


class SFTAdamW(FusedAdamW):
    """AdamW with HF Trainer's defaults for SFT: lr 1e-5, no weight decay, the fused kernel where it fits
    (arguments: :class:`~metalight.methods.optim.FusedAdamW`)."""

    def __init__(
        self,
        params,
        lr: float = 1e-5,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        fused: bool | None = None,
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=fused)
