"""The probes' default optimizer for their logistic-regression heads."""

from __future__ import annotations

import torch


class ProbeAdam(torch.optim.Adam):
    """Adam for the probes' logistic-regression heads: lr 1e-2 (the L2 penalty is in the loss, not here)."""

    def __init__(
        self, params, lr: float = 1e-2, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ):
        super().__init__(params, lr=lr, betas=betas, eps=eps)
