"""All metacognition metrics of one evaluation split in one torchmetrics object, read from the registry.

Why one ``Metric`` holding the answers rather than a ``MetricCollection`` of the public classes: the classes
take different inputs (PRR reads ``(confidence, quality)``, the unparsed rate reads ``parsed``), a compute
group shares states only between classes whose states are identical, and some classes keep rows that
others drop (AUROC₂ accepts any real score, ECE only probabilities). An evaluation split holds thousands of
answers, not millions, so keeping its four columns once and calling each declared functional twin on them
at ``compute`` is cheap, gives the classes' exact numbers (each class computes through the same function), and
makes a DDP result equal the single-process one by construction: the only reduction is one concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, get_args

from torch import Tensor
from torchmetrics import Metric

from metalight.metrics import registry
from metalight.metrics._inputs import as_binary, cat_state, check_rows, keep_mask, scored_rows
from metalight.metrics.type2 import Correction, _check_correction

METRIC_NAMES = registry.metric_names("report")
_BINARY = ("correct", "said_yes", "parsed")


class MetacognitionMetrics(Metric):
    """Every metacognition metric of the dual-prompt protocol, from one set of states.

    ``update(correct, said_yes, confidence, parsed, mask=None)``, all of shape [N]:
    ``correct`` (bool) the direct answer is right; ``said_yes`` (bool) the meta answer is
    yes; ``confidence`` (float) P(yes), NaN where unavailable; ``parsed`` (bool) the strict
    yes/no parser understood the meta answer; ``mask`` (bool, True = keep) drops rows such
    as a DistributedSampler's duplicated padding. Unparsed rows still count with the
    ``said_yes`` the caller gives them; their share is ``meta_unparsed_rate``.

    ``compute()`` returns one float per metric of :data:`~metalight.metrics.registry.METRICS` that has a
    ``compute`` (:data:`METRIC_NAMES`, in declaration order): its functional twin called on every kept row
    (``n``, ``accuracy``, ``dprime_type2`` with ``hit_rate`` / ``false_alarm_rate``, ``raw_alignment``,
    ``yes_ratio``, ``yes_failure_rate``, ``no_failure_rate``, ``rmi`` from (correct, said_yes);
    ``auroc_type2``, ``prr``, ``ece``, ``brier``, ``meta_d_prime``, ``m_ratio`` from the rows with a
    confidence; ``meta_unparsed_rate`` = unparsed / n).

    A value that cannot be estimated (e.g. d'type2 without wrong answers) is NaN, with a warning.
    The states are the kept rows (``"cat"``), so a DDP result equals the single-process one when the
    padding rows are masked out. Call ``update`` per batch: calling the object (``forward``) also
    computes every value, meta-d' fit included, on each batch.

    Args:
        dprime_correction: rates of 0 or 1 in d'type2: "clip" to [1e-4, 1 - 1e-4] (ESMA) or "loglinear".
        ece_bins: number of equal-width confidence bins for ECE (default: the registry entry's, 15).
        meta_d_ratings: number of confidence ratings (equal-width bins) for meta-d' (default: the entry's, 4).
        names: the registry metrics to compute (default: every report metric the registry declares).

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
        ece_bins: int = registry.metric_spec("ece").options["n_bins"],
        meta_d_ratings: int = registry.metric_spec("meta_d_prime").options["n_ratings"],
        names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        _check_correction(dprime_correction)
        for name, value, least in (("ece_bins", ece_bins, 1), ("meta_d_ratings", meta_d_ratings, 2)):
            if not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be an int >= {least}, got {value!r}")
        self.names = None if names is None else tuple(names)
        self.dprime_correction = dprime_correction
        self.ece_bins, self.meta_d_ratings = ece_bins, meta_d_ratings
        # Floats of the metric dtype: DDP fills a rank without data with that dtype.
        for column in get_args(registry.Column):
            self.add_state(column, default=[], dist_reduce_fx="cat")

    def update(
        self,
        correct: Tensor,
        said_yes: Tensor,
        confidence: Tensor,
        parsed: Tensor,
        mask: Tensor | None = None,
    ) -> None:
        """Add one batch of answers (checked here, so a bad column fails at its batch)."""
        n = check_rows(correct=correct, said_yes=said_yes, confidence=confidence, parsed=parsed)
        keep = keep_mask(mask, n, correct.device)
        scored_rows(correct, confidence, keep)  # raises for a non-float confidence or one outside [0, 1]
        for name, column in zip(_BINARY, (correct, said_yes, parsed)):
            getattr(self, name).append(as_binary(name, column)[keep].to(self.dtype))
        self.confidence.append(confidence[keep].to(self.dtype))

    def settings(self) -> dict[str, Any]:
        """The options this collection gives the declared metrics (over the registry entries' defaults)."""
        return {
            "correction": self.dprime_correction,
            "n_bins": self.ece_bins,
            "n_ratings": self.meta_d_ratings,
        }

    def compute(self) -> dict[str, float]:
        """Every metric of ``names`` (default: every report metric the registry declares now) over everything
        seen since the last reset, as floats."""
        columns = {name: cat_state(getattr(self, name)) for name in get_args(registry.Column)}
        columns.update({name: columns[name].bool() for name in _BINARY})
        return {
            name: float(value)
            for name, value in registry.compute_values(
                columns, self.names or registry.metric_names("report"), self.settings()
            ).items()
        }
