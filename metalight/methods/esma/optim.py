"""ESMA's default optimizer: plain SGD on the written ES gradient."""

from __future__ import annotations

import torch


class ESMASGD(torch.optim.SGD):
    """Plain SGD stepping ESMA's written ES gradient: θ ← θ − lr·g with lr = α = 5e-4 (the paper's)."""

    def __init__(self, params, lr: float = 5e-4, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
