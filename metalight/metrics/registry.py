"""The one declaration of every number metalight reports: its key, how it is computed, its label, its
direction, and where it is shown.

Every reader takes its names, labels, directions and functions from :data:`METRICS` when it runs: the
validation collection (:class:`~metalight.metrics.collection.MetacognitionMetrics`), the per-source metrics
and threshold sweeps (:mod:`metalight.metrics.selective`), ``report.json`` and the console table
(``callbacks/report_writer.py``), the curve and comparison plots (``report/plots.py``),
``python -m metalight.report compare`` (``report/tables.py``), the held-out intervals
(``evaluation/intervals.py``), ESMA's train-time metrics and weight-patching sweep, and the sweep summary
(``cli/multirun.py``); a test checks README's key lists against it. :func:`compute_values` is the one place a
declared function is called. Adding a metric is one torchmetrics class with its functional twin in
``metalight/metrics/`` plus one line here.

Where a number appears (the flags of :class:`MetricSpec`):

- ``report``: the validation collection computes it on every validation / test split; it is logged as
  ``<split>/<name>`` and written to ``report.json`` under ``<name>``;
- ``table``: a row of the console table after ``validate`` / ``test`` and of ``report compare``, and a
  column of the sweep summary; with ``source``, also a column of the per-source table;
- ``curve``: a panel of the validation curves during ``fit`` and of the ``report compare`` bar chart;
- ``source``: computed for every confidence source by
  :func:`~metalight.metrics.selective.confidence_metrics` and reported as ``<source>/<name>``;
- ``threshold``: reported at each source's chosen threshold as ``<source>/threshold_<name>``
  (a column of :func:`~metalight.metrics.selective.threshold_table`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from metalight.metrics.alignment import (
    accuracy,
    coverage,
    no_failure_rate,
    raw_alignment,
    rmi,
    selective_accuracy,
    yes_failure_rate,
    yes_ratio,
)
from metalight.metrics.calibration import brier_score, expected_calibration_error
from metalight.metrics.counts import answer_count, scored_rate, unparsed_rate
from metalight.metrics.metad import meta_d_prime
from metalight.metrics.prr import prediction_rejection_ratio
from metalight.metrics.type2 import dprime_type2, type2_auroc

Column = Literal["correct", "said_yes", "confidence", "parsed"]
Where = Literal["report", "table", "curve", "source", "threshold"]
ANSWERS: tuple[Column, ...] = ("correct", "said_yes")
SCORED: tuple[Column, ...] = ("correct", "confidence")


@dataclass(frozen=True)
class MetricSpec:
    """One reported number.

    Args:
        name: its key in ``report.json``, TensorBoard (``<split>/<name>``) and the per-source keys.
        label: short display label (table headers, plot titles).
        higher_is_better: ``True`` / ``False``, or ``None`` for a descriptive rate (e.g. the yes ratio).
        compute: the functional twin, called on the answer columns it ``reads``. A function returning a dict
            is indexed by ``name``, and is called once however many names read it.
        reads: the answer columns passed to ``compute``, in order: ``correct``, ``said_yes`` (bool; for a
            confidence source its yes-report), ``confidence`` (P(yes) or the source's score, NaN = none),
            ``parsed`` (bool).
        options: keyword arguments of ``compute`` with their defaults (``correction``, ``n_bins``,
            ``n_ratings``); a caller's settings override them (:func:`compute_values`).
        probability: it needs the confidence to be a probability of being correct (ECE, Brier): NaN for a
            confidence source whose score is not one.
        report: computed by the validation collection on every split, so it reaches ``report.json``.
        table, curve, source, threshold: where it is shown (see the module docstring).
    """

    name: str
    label: str
    higher_is_better: bool | None
    compute: Callable
    reads: tuple[Column, ...] = ANSWERS
    options: Mapping[str, Any] = field(default_factory=dict, hash=False)
    probability: bool = False
    report: bool = True
    table: bool = False
    curve: bool = False
    source: bool = False
    threshold: bool = False

    @property
    def title(self) -> str:
        """The label for a plot title, saying when lower is better."""
        return f"{self.label} (lower is better)" if self.higher_is_better is False else self.label


CORRECTION = {"correction": "clip"}  # d'type2's rates of 0 or 1 clipped to [1e-4, 1 - 1e-4], as ESMA

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("n", "n", None, answer_count, ("correct",), table=True),
    MetricSpec("accuracy", "accuracy", True, accuracy, ("correct",), table=True, curve=True),
    MetricSpec("auroc_type2", "AUROC₂", True, type2_auroc, SCORED, table=True, curve=True, source=True),
    MetricSpec(
        "prr",
        "PRR",
        True,
        prediction_rejection_ratio,
        ("confidence", "correct"),
        table=True,
        curve=True,
        source=True,
    ),
    MetricSpec(
        "dprime_type2",
        "d′₂",
        True,
        dprime_type2,
        options=CORRECTION,
        table=True,
        curve=True,
        source=True,
        threshold=True,
    ),
    MetricSpec("hit_rate", "hit rate H", None, dprime_type2, options=CORRECTION, source=True),
    MetricSpec("false_alarm_rate", "false-alarm rate F", None, dprime_type2, options=CORRECTION, source=True),
    MetricSpec("coverage", "coverage", None, coverage, report=False, table=True, source=True, threshold=True),
    MetricSpec(
        "selective_accuracy",
        "acc. if yes",
        True,
        selective_accuracy,
        report=False,
        table=True,
        source=True,
        threshold=True,
    ),
    MetricSpec(
        "raw_alignment",
        "raw alignment",
        True,
        raw_alignment,
        table=True,
        curve=True,
        source=True,
        threshold=True,
    ),
    MetricSpec("yes_ratio", "yes ratio", None, yes_ratio, table=True),
    MetricSpec("yes_failure_rate", "P(wrong | yes)", False, yes_failure_rate),
    MetricSpec("no_failure_rate", "P(right | no)", False, no_failure_rate),
    MetricSpec("rmi", "RMI", True, rmi),
    MetricSpec(
        "ece",
        "ECE",
        False,
        expected_calibration_error,
        SCORED,
        {"n_bins": 15},
        probability=True,
        table=True,
        curve=True,
        source=True,
    ),
    MetricSpec("brier", "Brier", False, brier_score, SCORED, probability=True, table=True, source=True),
    MetricSpec(
        "meta_d_prime", "meta-d′", True, meta_d_prime, SCORED, {"n_ratings": 4}, probability=True, table=True
    ),
    MetricSpec(
        "m_ratio", "M-ratio", True, meta_d_prime, SCORED, {"n_ratings": 4}, probability=True, table=True
    ),
    MetricSpec("meta_unparsed_rate", "unparsed", False, unparsed_rate, ("parsed",), table=True),
    MetricSpec(
        "scored_rate", "scored", None, scored_rate, ("confidence",), report=False, table=True, source=True
    ),
)


def metric_names(*where: Where) -> tuple[str, ...]:
    """Names of the declared metrics shown in every place of ``where``, in declaration order
    (no argument: all of them)."""
    return tuple(spec.name for spec in METRICS if all(getattr(spec, place) for place in where))


def metric_spec(name: str) -> MetricSpec | None:
    """The declaration of ``name``, or ``None`` for a number the registry does not declare."""
    return next((spec for spec in METRICS if spec.name == name), None)


def metric_title(name: str) -> str:
    """Plot title of a report key: its declared title, else the key itself (e.g. ``p_true/prr``)."""
    spec = metric_spec(name)
    return spec.title if spec is not None else name


def compute_values(
    columns: Mapping[str, Tensor | None],
    names: Iterable[str],
    settings: Mapping[str, Any] | None = None,
    probability: bool = True,
) -> dict[str, Tensor]:
    """Each named metric's functional twin on the answer ``columns`` (``correct``, ``said_yes``,
    ``confidence``, ``parsed``; ``None`` for one that does not exist), as float64 scalars.

    A function is called once however many names read it, with the entry's ``options`` overridden by
    ``settings`` (e.g. ``{"correction": "loglinear"}``). A metric whose column is ``None`` (a confidence
    source without a yes-report), or that needs a probability when ``probability`` is false, is NaN.
    """
    settings = settings or {}
    results: dict[Any, Any] = {}
    values: dict[str, Tensor] = {}
    for name in names:
        spec = metric_spec(name)
        if spec is None:
            raise KeyError(f"{name!r} is not declared in metalight.metrics.registry.METRICS")
        if any(columns.get(c) is None for c in spec.reads) or (spec.probability and not probability):
            values[name] = torch.tensor(math.nan, dtype=torch.float64)
            continue
        options = {k: settings.get(k, v) for k, v in spec.options.items()}
        key = (spec.compute, spec.reads, tuple(sorted(options.items())))
        if key not in results:  # one call per function, however many names it returns
            results[key] = spec.compute(*(columns[c] for c in spec.reads), **options)
        value = results[key]
        values[name] = (value[name] if isinstance(value, dict) else value).double()
    return values
