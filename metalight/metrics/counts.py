"""Counts of the answers themselves: how many were measured, how many have a confidence, and how many meta
answers the parser missed."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from metalight.metrics._inputs import as_binary, check_rows, keep_mask


def answer_count(correct: Tensor, mask: Tensor | None = None) -> Tensor:
    """Number of kept answers, as a float64 scalar (``correct`` is checked to be 0/1, not summed)."""
    n = check_rows(correct=correct)
    kept = as_binary("correct", correct)[keep_mask(mask, n, correct.device)]
    return torch.tensor(float(kept.numel()), dtype=torch.float64, device=correct.device)


def scored_rate(confidence: Tensor, mask: Tensor | None = None) -> Tensor:
    """Fraction of the kept answers that have a confidence (not NaN), as a float64 scalar (NaN over no
    rows)."""
    n = check_rows(confidence=confidence)
    kept = confidence[keep_mask(mask, n, confidence.device)]
    return (~torch.isnan(kept)).double().sum() / kept.numel()


def _unparsed_update(parsed: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor]:
    """(#unparsed, #rows) over the kept rows."""
    n = check_rows(parsed=parsed)
    parsed = as_binary("parsed", parsed)[keep_mask(mask, n, parsed.device)]
    return (~parsed).sum(), torch.tensor(parsed.numel(), device=parsed.device)


def unparsed_rate(parsed: Tensor, mask: Tensor | None = None) -> Tensor:
    """Functional :class:`UnparsedRate`."""
    n_unparsed, total = _unparsed_update(parsed, mask)
    return n_unparsed.double() / total


class UnparsedRate(Metric):
    """Share of meta answers that the strict yes/no parser did not understand (0 = all parsed).

    ``update(parsed, mask=None)``: ``parsed`` bool/0-1 [N]; ``mask`` (bool [N], True = keep) drops rows.
    ``compute()`` returns a float64 scalar, NaN over no rows.

    Example (one unparsed answer of four):

    >>> import torch
    >>> metric = UnparsedRate()
    >>> metric.update(torch.tensor([1, 1, 0, 1]))
    >>> metric.compute().item()
    0.25
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("n_unparsed", default=torch.tensor(0), dist_reduce_fx="sum")
        self.add_state("total", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, parsed: Tensor, mask: Tensor | None = None) -> None:
        """Add the counts of one batch."""
        n_unparsed, total = _unparsed_update(parsed, mask)
        self.n_unparsed += n_unparsed
        self.total += total

    def compute(self) -> Tensor:
        """The unparsed share over everything seen since the last reset."""
        return self.n_unparsed.double() / self.total
