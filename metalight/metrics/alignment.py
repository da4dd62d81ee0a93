"""ESMA's alignment measures of yes/no self-reports, all read from the 2×2 table (correct × said yes)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torchmetrics import Metric

from metalight.metrics._inputs import binary_rows


def _alignment_update(correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> Tensor:
    """The 2×2 count table over the kept rows: ``table[c, y]`` = #(correct == c, said_yes == y)."""
    correct, said_yes = binary_rows(correct, said_yes, mask)
    return torch.bincount(2 * correct.long() + said_yes.long(), minlength=4).view(2, 2)


def _entropy_bits(p: Tensor) -> Tensor:
    """Shannon entropy in bits of the distribution(s) in the last dim, with 0·log 0 = 0."""
    return -torch.special.xlogy(p, p).sum(-1) / torch.log(torch.tensor(2.0, dtype=p.dtype))


def _rmi(table: Tensor) -> Tensor:
    """I(correct; yes) / H(correct) in bits from the empirical joint; 0 when accuracy is 0 or 1."""
    joint = table.double() / table.sum()
    p_correct, p_yes = joint.sum(1), joint.sum(0)
    h_correct = _entropy_bits(p_correct)
    if table.sum() > 0 and (p_correct[1] == 0 or p_correct[1] == 1):
        return torch.zeros((), dtype=torch.float64, device=table.device)
    mutual_information = h_correct + _entropy_bits(p_yes) - _entropy_bits(joint.flatten())
    return mutual_information / h_correct


def _alignment_compute(table: Tensor) -> dict[str, Tensor]:
    """All alignment measures from the 2×2 table (float64; a rate over no rows is NaN)."""
    t = table.double()
    n = t.sum()
    n_yes, n_no = t[:, 1].sum(), t[:, 0].sum()
    return {
        "accuracy": t[1].sum() / n,
        "raw_alignment": (t[1, 1] + t[0, 0]) / n,
        "yes_ratio": n_yes / n,
        "yes_failure_rate": t[0, 1] / n_yes,
        "no_failure_rate": t[1, 0] / n_no,
        "rmi": _rmi(table),
    }


def _measure(name: str, correct: Tensor, said_yes: Tensor, mask: Tensor | None) -> Tensor:
    return _alignment_compute(_alignment_update(correct, said_yes, mask))[name]


def accuracy(correct: Tensor, said_yes: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
    """Fraction of answers that are correct (``said_yes``, when given, is checked for shape, not used)."""
    return _measure("accuracy", correct, correct if said_yes is None else said_yes, mask)


def raw_alignment(correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean of 1[correct == said_yes]: the self-report agrees with the outcome."""
    return _measure("raw_alignment", correct, said_yes, mask)


def yes_ratio(correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> Tensor:
    """Fraction of meta answers that are "yes"."""
    return _measure("yes_ratio", correct, said_yes, mask)


def coverage(correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> Tensor:
    """Fraction of answers reported yes ("answered"): a confidence source's yes ratio."""
    return _measure("yes_ratio", correct, said_yes, mask)


def selective_accuracy(correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> Tensor:
    """P(correct | yes): the accuracy of the answers reported yes ("accuracy if answered"). NaN when none
    is."""
    table = _alignment_update(correct, said_yes, mask).double()
    return table[1, 1] / table[:, 1].sum()


def yes_failure_rate(correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> Tensor:
    """P(wrong | said yes): overclaiming. NaN when nobody said yes."""
    return _measure("yes_failure_rate", correct, said_yes, mask)


def no_failure_rate(correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> Tensor:
    """P(correct | said no): underclaiming. NaN when nobody said no."""
    return _measure("no_failure_rate", correct, said_yes, mask)


def rmi(correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> Tensor:
    """Relative meta information I(correct; yes) / H(correct), bits over bits, in [0, 1]."""
    return _measure("rmi", correct, said_yes, mask)


class MetaAlignment(Metric):
    """ESMA's alignment measures of yes/no self-reports, from the 2×2 table correct × said_yes.

    - ``accuracy`` = P(correct); ``yes_ratio`` = P(yes)
    - ``raw_alignment`` = mean 1[correct == said_yes]
    - ``yes_failure_rate`` = P(wrong | yes); ``no_failure_rate`` = P(correct | no)
    - ``rmi`` = I(correct; yes) / H(correct), logs base 2, from the empirical joint with
      0·log 0 = 0; defined as 0 when accuracy is 0 or 1 (as ESMA). Range [0, 1].

    ``update(correct, said_yes, mask=None)``: bool or 0/1 tensors of shape [N]; ``mask``
    (bool [N], True = keep) drops rows. ``compute()`` returns a dict of float64 scalars;
    a rate whose condition never occurred (no yes, no no, no rows) is NaN.

    Example (table: 2 correct-yes, 1 correct-no, 1 wrong-yes, 2 wrong-no):

    >>> import torch
    >>> metric = MetaAlignment()
    >>> metric.update(torch.tensor([1, 1, 1, 0, 0, 0]), torch.tensor([1, 1, 0, 1, 0, 0]))
    >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}  # doctest: +NORMALIZE_WHITESPACE
    {'accuracy': 0.5, 'raw_alignment': 0.6667, 'yes_ratio': 0.5, 'yes_failure_rate': 0.3333,
     'no_failure_rate': 0.3333, 'rmi': 0.0817}
    """

    is_differentiable = False
    higher_is_better = None  # a mix: alignment and RMI up, failure rates down
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("table", default=torch.zeros(2, 2, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> None:
        """Add one batch to the 2×2 table."""
        self.table += _alignment_update(correct, said_yes, mask)

    def compute(self) -> dict[str, Tensor]:
        """All measures over everything seen since the last reset."""
        return _alignment_compute(self.table)
