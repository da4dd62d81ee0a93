"""Input checks shared by the metrics: 0/1 columns, equal lengths, the padding mask, NaN confidence."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities import rank_zero_warn
from torchmetrics.utilities.data import dim_zero_cat


def as_binary(name: str, x: Tensor) -> Tensor:
    """``x`` as a bool tensor; raises ``ValueError`` if it holds anything but 0 and 1."""
    if x.dtype == torch.bool:
        return x
    if x.is_floating_point() and torch.isnan(x).any():
        raise ValueError(f"`{name}` contains NaN; it must be 0/1 or bool")
    if not ((x == 0) | (x == 1)).all():
        values = torch.unique(x)[:5].tolist()
        raise ValueError(f"`{name}` must hold only 0/1 (or be bool), got values {values}")
    return x.bool()


def check_rows(**columns: Tensor | None) -> int:
    """Check that every given column is 1-D with the same length N; return N."""
    lengths = {}
    for name, col in columns.items():
        if col is None:
            continue
        if col.ndim != 1:
            raise ValueError(f"`{name}` must be 1-D with shape [N], got shape {tuple(col.shape)}")
        lengths[name] = col.shape[0]
    if len(set(lengths.values())) > 1:
        raise ValueError(f"inputs must have the same length N, got {lengths}")
    return next(iter(lengths.values()), 0)


def keep_mask(mask: Tensor | None, n: int, device: torch.device) -> Tensor:
    """The rows to keep: ``mask`` (True = keep) checked against N, or all rows when it is None."""
    if mask is None:
        return torch.ones(n, dtype=torch.bool, device=device)
    if mask.ndim != 1 or mask.shape[0] != n:
        raise ValueError(f"`mask` must have shape [{n}], got {tuple(mask.shape)}")
    return as_binary("mask", mask)


def binary_rows(correct: Tensor, said_yes: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """Validated bool ``correct`` and ``said_yes`` restricted to the kept rows."""
    n = check_rows(correct=correct, said_yes=said_yes)
    keep = keep_mask(mask, n, correct.device)
    return as_binary("correct", correct)[keep], as_binary("said_yes", said_yes)[keep]


def scored_rows(
    correct: Tensor, confidence: Tensor, mask: Tensor | None, unit_interval: bool = True
) -> tuple[Tensor, Tensor]:
    """Bool ``correct`` and float ``confidence`` for kept rows whose confidence is not NaN.

    NaN means "no confidence for this row" and drops the row. With ``unit_interval``,
    a confidence outside [0, 1] raises ``ValueError``: it is a probability, not a logit.
    """
    n = check_rows(correct=correct, confidence=confidence)
    if not confidence.is_floating_point():
        raise ValueError(f"`confidence` must be a float tensor, got {confidence.dtype}")
    keep = keep_mask(mask, n, correct.device) & ~torch.isnan(confidence)
    correct, confidence = as_binary("correct", correct)[keep], confidence[keep]
    if unit_interval and confidence.numel() and ((confidence < 0) | (confidence > 1)).any():
        raise ValueError("`confidence` must lie in [0, 1] (a probability of being correct)")
    return correct, confidence


def cat_state(state: Tensor | list[Tensor]) -> Tensor:
    """A ``"cat"`` state as one tensor; empty (length 0) when ``update`` was never called."""
    if isinstance(state, list) and not state:
        return torch.empty(0)
    return dim_zero_cat(state)


def warn(message: str) -> None:
    """Warn once per process group (rank 0), e.g. when a value is NaN because a class is empty."""
    rank_zero_warn(message, UserWarning)


class ScoredRowsMetric(Metric):
    """Base of the metrics that keep every scored ``(correct, confidence)`` row (rows with NaN confidence
    or masked out are dropped), gathered across ranks by concatenation."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # Floats of the metric dtype: DDP fills a rank without data with that dtype.
        self.add_state("correct", default=[], dist_reduce_fx="cat")
        self.add_state("confidence", default=[], dist_reduce_fx="cat")

    def update(self, correct: Tensor, confidence: Tensor, mask: Tensor | None = None) -> None:
        """Append the scored rows of one batch."""
        correct, confidence = scored_rows(correct, confidence, mask)
        self.correct.append(correct.to(self.dtype))
        self.confidence.append(confidence.to(self.dtype))

    def rows(self) -> tuple[Tensor, Tensor]:
        """``(correct [N] bool, confidence [N])`` of everything seen since the last reset."""
        return cat_state(self.correct).bool(), cat_state(self.confidence)
