"""Probe accuracy and AUROC for every (layer, axis) at once, as one DDP-safe torchmetrics ``Metric``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_accuracy, binary_auroc
from torchmetrics.utilities import dim_zero_cat


def probe_metrics(scores: Tensor, labels: Tensor) -> dict[str, Tensor]:
    """``{"accuracy": [L, A], "auroc": [L, A]}`` of axis ``scores [n, L, A]`` against 0/1 ``labels [n]``.

    Accuracy compares the neural label (score ≥ 0) with the dataset label. PC axes carry no fitted sign, so
    their AUROC may lie below 0.5 (1 − AUROC is the AUROC of the opposite sign).
    """
    _, n_layers, n_axes = scores.shape
    labels = labels.long()
    accuracy = torch.empty(n_layers, n_axes)
    auroc = torch.empty(n_layers, n_axes)
    for li in range(n_layers):
        for ai in range(n_axes):
            column = scores[:, li, ai].float()
            accuracy[li, ai] = binary_accuracy((column >= 0).long(), labels)
            auroc[li, ai] = binary_auroc(column, labels)
    return {"accuracy": accuracy, "auroc": auroc}


class ProbeScores(Metric):
    """Accumulates axis scores ``[n, L, A]`` and labels ``[n]`` (rows with ``mask`` False are dropped: the
    duplicates a distributed sampler adds); ``compute()`` returns :func:`probe_metrics`."""

    full_state_update = False
    is_differentiable = False
    higher_is_better = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, labels: Tensor, mask: Tensor | None = None) -> None:
        if mask is not None:
            scores, labels = scores[mask], labels[mask]
        self.scores.append(scores.float())
        self.labels.append(labels.long())

    def compute(self) -> dict[str, Tensor]:
        return probe_metrics(dim_zero_cat(self.scores), dim_zero_cat(self.labels))


def flatten_metrics(
    values: dict[str, Tensor], layers: Sequence[int], axes: Sequence[str], prefix: str = ""
) -> dict[str, float]:
    """``{"<prefix>layer<l>/<axis>_<metric>": value}`` for logging."""
    return {
        f"{prefix}layer{layer}/{axis}_{name}": float(table[li, ai])
        for name, table in values.items()
        for li, layer in enumerate(layers)
        for ai, axis in enumerate(axes)
    }
