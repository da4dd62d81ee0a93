"""All metacognition metrics of one evaluation split in one torchmetrics object."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor
from torchmetrics import Metric

from metalight.metrics._inputs import as_binary, cat_state, check_rows, keep_mask, scored_rows
from metalight.metrics.alignment import _alignment_compute, _alignment_update
from metalight.metrics.calibration import _brier_compute, _brier_update, _ece_compute
from metalight.metrics.metad import _meta_d_compute
from metalight.metrics.prr import _prr_compute
from metalight.metrics.type2 import Correction, _check_correction, _dprime_type2_compute, _type2_auroc_compute

METRIC_NAMES = (
    "n",
    "accuracy",
    "dprime_type2",
    "hit_rate",
    "false_alarm_rate",
    "auroc_type2",
    "prr",
    "raw_alignment",
    "yes_ratio",
    "yes_failure_rate",
    "no_failure_rate",
    "rmi",
    "ece",
    "brier",
    "meta_d_prime",
    "m_ratio",
    "meta_unparsed_rate",
)


class MetacognitionMetrics(Metric):
    """Every metacognition metric of the dual-prompt protocol, from one set of states.

    ``update(correct, said_yes, confidence, parsed, mask=None)``, all of shape [N]:
    ``correct`` (bool) the direct answer is right; ``said_yes`` (bool) the meta answer is
    yes; ``confidence`` (float) P(yes), NaN where unavailable; ``parsed`` (bool) the strict
    yes/no parser understood the meta answer; ``mask`` (bool, True = keep) drops rows such
    as a DistributedSampler's duplicated padding. Unparsed rows still count with the
    ``said_yes`` the caller gives them; their share is ``meta_unparsed_rate``.

    ``compute()`` returns floats under :data:`METRIC_NAMES`:

    - from (correct, said_yes), all rows: ``n``, ``accuracy``, ``dprime_type2`` with
      ``hit_rate`` / ``false_alarm_rate`` (:class:`~metalight.metrics.type2.DPrimeType2`),
      ``raw_alignment``, ``yes_ratio``, ``yes_failure_rate``, ``no_failure_rate``, ``rmi``
      (:class:`~metalight.metrics.alignment.MetaAlignment`);
    - from (correct, confidence), rows with a confidence: ``auroc_type2``, ``prr``, ``ece``,
      ``brier``, ``meta_d_prime``, ``m_ratio`` (:mod:`~metalight.metrics.type2`,
      :mod:`~metalight.metrics.prr`, :mod:`~metalight.metrics.calibration`,
      :mod:`~metalight.metrics.metad`);
    - ``meta_unparsed_rate`` = unparsed / n.

    A value that cannot be estimated (e.g. d'type2 without wrong answers) is NaN, with a warning.
    States are counts (``"sum"``) and concatenated scored rows (``"cat"``), so a DDP result
    equals the single-process one when the padding rows are masked out. Call ``update`` per
    batch: calling the object (``forward``) also computes every value, meta-d' fit included,
    on each batch.

    Args:
        dprime_correction: rates of 0 or 1 in d'type2: "clip" to [1e-4, 1 - 1e-4] (ESMA) or "loglinear".
        ece_bins: number of equal-width confidence bins for ECE.
        meta_d_ratings: number of confidence ratings (equal-width bins) for meta-d'.

    Example (accuracy 1/2, H = 2/3, F = 1/3, one unparsed meta answer of six):

    >>> import torch
    >>> metrics = MetacognitionMetrics()
    >>> correct = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool)
    >>> said_yes = torch.tensor([1, 1, 0, 1, 0, 0], dtype=torch.bool)
    >>> confidence = torch.tensor([0.9, 0.8, 0.4, 0.6, 0.2, float("nan")])
    >>> parsed = torch.tensor([1, 1, 1, 1, 1, 0], dtype=torch.bool)
    >>> metrics.update(correct, said_yes, confidence, parsed)
    >>> result = metrics.compute()
    >>> result["n"], result["accuracy"], round(result["dprime_type2"], 4)
    (6.0, 0.5, 0.8615)
    >>> round(result["meta_unparsed_rate"], 4)
    0.1667
    """

    is_differentiable = False
    higher_is_better = None  # a mix: sensitivities up, calibration errors and failure rates down
    full_state_update = False

    def __init__(
        self,
        dprime_correction: Correction = "clip",
        ece_bins: int = 15,
        meta_d_ratings: int = 4,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_correction(dprime_correction)
        for name, value, least in (("ece_bins", ece_bins, 1), ("meta_d_ratings", meta_d_ratings, 2)):
            if not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        self.dprime_correction = dprime_correction
        self.ece_bins, self.meta_d_ratings = ece_bins, meta_d_ratings
        self.add_state("table", default=torch.zeros(2, 2, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_unparsed", default=torch.tensor(0), dist_reduce_fx="sum")
        # Floats of the metric dtype: DDP fills a rank without data with that dtype.
        self.add_state("scored_correct", default=[], dist_reduce_fx="cat")
        self.add_state("scored_confidence", default=[], dist_reduce_fx="cat")

    def update(
        self,
        correct: Tensor,
        said_yes: Tensor,
        confidence: Tensor,
        parsed: Tensor,
        mask: Optional[Tensor] = None,
    ) -> None:
        """Add one batch of answers."""
        n = check_rows(correct=correct, said_yes=said_yes, confidence=confidence, parsed=parsed)
        keep = keep_mask(mask, n, correct.device)
        self.table += _alignment_update(correct, said_yes, keep)
        self.n_unparsed += (~as_binary("parsed", parsed))[keep].sum()
        scored_correct, scored_confidence = scored_rows(correct, confidence, keep)
        self.scored_correct.append(scored_correct.to(self.dtype))
        self.scored_confidence.append(scored_confidence.to(self.dtype))

    def compute(self) -> dict[str, float]:
        """Every metric over everything seen since the last reset, as floats keyed by METRIC_NAMES."""
        table = self.table
        n = table.sum()
        values: dict[str, Tensor] = {"n": n.double()}
        values.update(_alignment_compute(table))
        counts = table[1, 1], table[1].sum(), table[0, 1], table[0].sum()  # yes/all among correct, incorrect
        values.update(_dprime_type2_compute(*counts, correction=self.dprime_correction))
        correct, confidence = cat_state(self.scored_correct).bool(), cat_state(self.scored_confidence)
        values["auroc_type2"] = _type2_auroc_compute(correct, confidence)
        values["prr"] = _prr_compute(confidence.double(), correct.double())
        values["ece"] = _ece_compute(correct, confidence, self.ece_bins)
        values["brier"] = _brier_compute(*_brier_update(correct, confidence))
        values.update(_meta_d_compute(correct, confidence, self.meta_d_ratings, "uniform"))
        values["meta_unparsed_rate"] = self.n_unparsed.double() / n
        return {name: float(values[name]) for name in METRIC_NAMES}
