"""Type-2 sensitivity of self-reports against answer correctness: d'type2 and AUROC2."""

from __future__ import annotations

from typing import Any, Literal, get_args

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.functional.classification import binary_auroc

from metalight.metrics._inputs import binary_rows, cat_state, scored_rows, warn

Correction = Literal["clip", "loglinear"]
CLIP = 1e-4  # ESMA's bound on H and F: caps |d'| at about 7.44


def _check_correction(correction: str) -> None:
    if correction not in get_args(Correction):
        raise ValueError(f"correction must be one of {get_args(Correction)}, got {correction!r}")


def _dprime_type2_update(
    correct: Tensor, said_yes: Tensor, mask: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Counts (yes & correct, correct, yes & incorrect, incorrect) over the kept rows."""
    correct, said_yes = binary_rows(correct, said_yes, mask)
    return (said_yes & correct).sum(), correct.sum(), (said_yes & ~correct).sum(), (~correct).sum()


def _dprime_type2_compute(
    yes_correct: Tensor, n_correct: Tensor, yes_incorrect: Tensor, n_incorrect: Tensor, correction: Correction
) -> dict[str, Tensor]:
    """d'type2 and the raw hit / false-alarm rates from the four counts (float64)."""
    yc, nc, yi, ni = torch.stack([yes_correct, n_correct, yes_incorrect, n_incorrect]).double()
    hit_rate, false_alarm_rate = yc / nc, yi / ni  # 0/0 = NaN for an empty class
    if correction == "clip":
        h, f = hit_rate.clamp(CLIP, 1 - CLIP), false_alarm_rate.clamp(CLIP, 1 - CLIP)
    else:
        h, f = (yc + 0.5) / (nc + 1), (yi + 0.5) / (ni + 1)
    dprime = torch.special.ndtri(h) - torch.special.ndtri(f)
    if nc == 0 or ni == 0:
        warn(f"d'type2 is NaN: {int(nc)} correct and {int(ni)} incorrect answers (both classes are needed)")
        dprime = torch.full_like(dprime, float("nan"))
    return {"dprime_type2": dprime, "hit_rate": hit_rate, "false_alarm_rate": false_alarm_rate}


def dprime_type2(
    correct: Tensor, said_yes: Tensor, correction: Correction = "clip", mask: Tensor | None = None
) -> dict[str, Tensor]:
    """Functional :class:`DPrimeType2`: the same dict, from one set of rows."""
    _check_correction(correction)
    return _dprime_type2_compute(*_dprime_type2_update(correct, said_yes, mask), correction=correction)


class DPrimeType2(Metric):
    """Type-2 sensitivity d' of yes/no self-reports against answer correctness.

    H = P(yes | correct), F = P(yes | incorrect); rates of 0 or 1 are clipped to
    [1e-4, 1 - 1e-4] (``correction="clip"``, as ESMA) or log-linear corrected
    (``"loglinear"``: H = (yes_correct + 0.5) / (n_correct + 1), F likewise).
    d'type2 = Φ⁻¹(H) − Φ⁻¹(F), in z units (0 = no metacognitive sensitivity).

    ``update(correct, said_yes, mask=None)``: bool or 0/1 tensors of shape [N];
    ``mask`` (bool [N], True = keep) drops rows, e.g. a DistributedSampler's padding.

    ``compute()`` returns float64 scalars ``{"dprime_type2", "hit_rate", "false_alarm_rate"}``;
    the two rates are the raw, uncorrected proportions. A class with no rows makes its
    rate NaN and d'type2 NaN, with a warning.

    Example (H = 3/4, F = 1/4, so d' = 2·Φ⁻¹(0.75) = 2 × 0.6745):

    >>> import torch
    >>> metric = DPrimeType2()
    >>> metric.update(torch.tensor([1, 1, 1, 1, 0, 0, 0, 0]), torch.tensor([1, 1, 1, 0, 1, 0, 0, 0]))
    >>> {k: round(v.item(), 4) for k, v in metric.compute().items()}
    {'dprime_type2': 1.349, 'hit_rate': 0.75, 'false_alarm_rate': 0.25}
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, correction: Correction = "clip", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_correction(correction)
        self.correction = correction
        for name in ("yes_correct", "n_correct", "yes_incorrect", "n_incorrect"):
            self.add_state(name, default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> None:
        """Add the counts of one batch."""
        yc, nc, yi, ni = _dprime_type2_update(correct, said_yes, mask)
        self.yes_correct += yc
        self.n_correct += nc
        self.yes_incorrect += yi
        self.n_incorrect += ni

    def compute(self) -> dict[str, Tensor]:
        """d'type2 and the raw rates over everything seen since the last reset."""
        return _dprime_type2_compute(
            self.yes_correct, self.n_correct, self.yes_incorrect, self.n_incorrect, self.correction
        )


def _type2_auroc_compute(correct: Tensor, confidence: Tensor) -> Tensor:
    """AUROC of ``confidence`` for separating correct from incorrect rows; NaN with one class."""
    n_correct = int(correct.sum())
    if n_correct in (0, correct.numel()):
        warn(f"AUROC2 is NaN: {n_correct} correct of {correct.numel()} scored answers (both classes needed)")
        return torch.tensor(float("nan"), dtype=torch.float64, device=correct.device)
    # AUROC depends only on the order of the scores. Dense ranks scaled into [0, 1] keep order
    # and ties exactly, and stop binary_auroc from applying a sigmoid to scores outside [0, 1].
    _, ranks = torch.unique(confidence, return_inverse=True)
    scores = ranks.double() / max(int(ranks.max()), 1)
    return binary_auroc(scores, correct.long()).double()


def type2_auroc(correct: Tensor, confidence: Tensor, mask: Tensor | None = None) -> Tensor:
    """Functional :class:`Type2AUROC`."""
    return _type2_auroc_compute(*scored_rows(correct, confidence, mask, unit_interval=False))


class Type2AUROC(Metric):
    """Type-2 AUROC: how well a confidence score ranks correct above incorrect answers.

    AUROC2 = P(score of a random correct answer > score of a random incorrect one), ties
    counting 1/2 (torchmetrics ``binary_auroc``, exact, no thresholds). 0.5 = chance, 1 = perfect.

    ``update(correct, confidence, mask=None)``: ``correct`` bool/0-1 [N], ``confidence`` float [N],
    any real score (e.g. P(yes) or a logit); NaN marks a row without a score and drops it.
    ``compute()`` returns a float64 scalar (torchmetrics computes it to float32 precision);
    NaN with a warning when only one class was seen.

    Example (3 of the 4 correct/incorrect pairs are ordered right):

    >>> import torch
    >>> metric = Type2AUROC()
    >>> metric.update(torch.tensor([1, 1, 0, 0]), torch.tensor([0.9, 0.4, 0.5, 0.1]))
    >>> round(metric.compute().item(), 4)
    0.75
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Stored as floats of the metric dtype: DDP fills a rank without data with that dtype.
        self.add_state("correct", default=[], dist_reduce_fx="cat")
        self.add_state("confidence", default=[], dist_reduce_fx="cat")

    def update(self, correct: Tensor, confidence: Tensor, mask: Tensor | None = None) -> None:
        """Append the scored rows of one batch."""
        correct, confidence = scored_rows(correct, confidence, mask, unit_interval=False)
        self.correct.append(correct.to(self.dtype))
        self.confidence.append(confidence.to(self.dtype))

    def compute(self) -> Tensor:
        """AUROC2 over everything seen since the last reset."""
        return _type2_auroc_compute(cat_state(self.correct).bool(), cat_state(self.confidence))
