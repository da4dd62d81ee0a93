"""Bootstrap confidence intervals for held-out metacognition, and for its change after training.

The same questions are answered before and after, so the change is bootstrapped *paired*: each resample
draws one set of question indices and scores both runs on it (``scipy.stats.bootstrap``, percentile method).
Its p-value comes from a paired permutation test (each question's before and after answers swapped at
random), which stays exact when only a handful of answers
changed — there a percentile interval can exclude zero for four flips that all went one way (two-sided
p = 1/8). A change is called significant when p < 0.05.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from scipy.stats import bootstrap

from metalight.evaluation.dual_prompt import SampleResult
from metalight.metrics.registry import compute_values, metric_spec

# a statistic of (correct, said_yes, p_yes) arrays
Statistic = Callable[[np.ndarray, np.ndarray, np.ndarray], float]
# The registry metrics given intervals (the first two also get the verdict line).
INTERVAL_METRICS = ("dprime_type2", "auroc_type2", "accuracy", "yes_ratio")


def statistic(name: str) -> Statistic:
    """The registry metric ``name`` as a statistic of (correct, said_yes, p_yes) arrays; NaN, without a
    warning, where it cannot be estimated (a resample with one class)."""

    def value(correct: np.ndarray, said_yes: np.ndarray, p_yes: np.ndarray) -> float:
        columns = {
            "correct": torch.as_tensor(correct),
            "said_yes": torch.as_tensor(said_yes),
            "confidence": torch.as_tensor(p_yes),
        }
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".* is NaN: ")
            return float(compute_values(columns, [name])[name])

    return value


# name -> (label, statistic), label and function from the metric registry
STATISTICS: dict[str, tuple[str, Statistic]] = {
    name: (metric_spec(name).label, statistic(name)) for name in INTERVAL_METRICS
}


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval (``low``, ``high``: the 2.5% and 97.5% percentiles)."""

    value: float
    low: float
    high: float
    p_value: float | None = None  # of a change: the paired permutation test's two-sided p

    def significant(self, level: float = 0.05) -> bool:
        """A change whose permutation p-value is below ``level``."""
        return self.p_value is not None and self.p_value < level

    def excludes_zero(self) -> bool:
        """True when the whole interval lies on one side of zero."""
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, float | None]:
        """JSON-ready (NaN as None)."""
        pairs = (("value", self.value), ("low", self.low), ("high", self.high), ("p_value", self.p_value))
        return {k: None if v is None or math.isnan(v) else v for k, v in pairs}

    def __str__(self) -> str:
        text = f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"
        return (
            text
            if self.p_value is None
            else f"{self.value:+.3f} [{self.low:+.3f}, {self.high:+.3f}] p={self.p_value:.3f}"
        )


def columns(results: Sequence[SampleResult]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(correct, said_yes, p_yes) of ``results`` as arrays (bool, bool, float64)."""
    return (
        np.array([r.correct for r in results], dtype=bool),
        np.array([r.said_yes for r in results], dtype=bool),
        np.array([r.p_yes for r in results], dtype=np.float64),
    )


def _interval(
    data: tuple[np.ndarray, ...], statistic: Callable[..., float], resamples: int, seed: int, value: float
) -> Interval:
    if math.isnan(value):
        return Interval(math.nan, math.nan, math.nan)
    # A resample with one class gives NaN; nanpercentile keeps the rest (rare at n >= 100 with both classes).
    draws = bootstrap(
        data,
        statistic,
        paired=True,
        vectorized=False,
        n_resamples=resamples,
        method="percentile",
        random_state=np.random.default_rng(seed),
    ).bootstrap_distribution
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return Interval(value, float(low), float(high))


def held_out_intervals(
    results: Sequence[SampleResult], resamples: int = 2000, seed: int = 0
) -> dict[str, Interval]:
    """Each statistic of ``results`` with its 95% bootstrap interval (resampling questions)."""
    data = columns(results)
    return {name: _interval(data, fn, resamples, seed, fn(*data)) for name, (_, fn) in STATISTICS.items()}


def paired_change(
    before: Sequence[SampleResult], after: Sequence[SampleResult], resamples: int = 2000, seed: int = 0
) -> dict[str, Interval]:
    """after − before of each statistic on the same questions (matched by id), with its paired 95%
    interval."""
    by_id = {r.id: r for r in after}
    missing = [r.id for r in before if r.id not in by_id]
    if missing or len(by_id) != len(before):
        raise ValueError(f"paired_change needs the same questions before and after ({len(missing)} missing)")
    data = (*columns(before), *columns([by_id[r.id] for r in before]))

    out = {}
    for name, (_, fn) in STATISTICS.items():

        def change(c0, y0, p0, c1, y1, p1, fn=fn):
            return fn(c1, y1, p1) - fn(c0, y0, p0)

        interval = _interval(data, change, resamples, seed, change(*data))
        out[name] = replace(interval, p_value=_permutation_p(data, fn, resamples, seed, interval.value))
    return out


def _permutation_p(
    data: tuple[np.ndarray, ...], fn: Statistic, resamples: int, seed: int, value: float
) -> float:
    """Two-sided p of after − before under "training changed nothing": each question's before and after
    answers swapped at random, ``resamples`` times; p = (1 + #|permuted change| ≥ |change|) / (1 + resamples)
    (a permutation whose statistic is NaN counts as not extreme)."""
    if math.isnan(value):
        return math.nan
    before, after = (
        np.stack(data[:3]).astype(np.float64),
        np.stack(data[3:]).astype(np.float64),
    )  # [3, n] each
    rng = np.random.default_rng(seed)
    extreme = 0
    for _ in range(resamples):
        swap = rng.random(before.shape[1]) < 0.5
        x, y = np.where(swap, before, after), np.where(swap, after, before)
        change = fn(x[0].astype(bool), x[1].astype(bool), x[2]) - fn(
            y[0].astype(bool), y[1].astype(bool), y[2]
        )
        extreme += bool(abs(change) >= abs(value) - 1e-12)
    return (1 + extreme) / (1 + resamples)


Z_95, Z_POWER_80 = 1.959964, 0.841621


def minimum_detectable_change(change: Interval) -> float | None:
    """The smallest true change a paired comparison like this one detects 80% of the time at two-sided
    α = 0.05: (1.96 + 0.84) × SE, the SE read off the 95% bootstrap interval as (high − low) / 3.92
    (``None`` when the change is undefined)."""
    if change.value is None or math.isnan(change.value) or math.isnan(change.low):
        return None
    return (Z_95 + Z_POWER_80) * (change.high - change.low) / (2 * Z_95)


def change_table(
    before: dict[str, Interval],
    after: dict[str, Interval],
    change: dict[str, Interval],
    n: int,
    title: str = "after",
) -> str:
    """A before / after / change table with 95% intervals, one line per statistic, and a closing verdict line
    on the first two (d′type2, AUROC₂)."""
    lines = [
        (
            f"{'held-out (n=' + str(n) + ')':<18}{'before [95% CI]':>24}{title + ' [95% CI]':>24}"
            f"{'change [95% CI] paired p':>36}"
        )
    ]
    for name, (label, _) in STATISTICS.items():
        lines.append(f"{label:<18}{before[name]!s:>24}{after[name]!s:>24}{change[name]!s:>36}")
    lines.append(verdict(change))
    return "\n".join(lines)


def verdict(change: dict[str, Interval]) -> str:
    """One line: whether the d′type2 and AUROC₂ changes are significant (paired permutation p < 0.05), and
    which other statistics changed significantly."""
    parts = []
    for name in ("dprime_type2", "auroc_type2"):
        c = change[name]
        label = STATISTICS[name][0]
        if math.isnan(c.value):
            parts.append(f"{label}: undefined (one class only)")
        elif c.significant():
            parts.append(
                f"{label} {'rose' if c.value > 0 else 'fell'} by {abs(c.value):.3f}, significant "
                f"(p = {c.p_value:.3f})"
            )
        else:
            parts.append(f"{label} changed by {c.value:+.3f}, not significant (p = {c.p_value:.3f})")
    others = [
        f"{STATISTICS[k][0]} {c.value:+.3f} (p = {c.p_value:.3f})"
        for k, c in change.items()
        if k not in ("dprime_type2", "auroc_type2") and c.significant()
    ]
    if others:
        parts.append("also significant: " + ", ".join(others))
    return "; ".join(parts)


def learning_verdict(change: dict[str, Interval]) -> str:
    """One line: did the model learn to know what it knows? Yes when AUROC₂ or d′type2 rose significantly
    (paired permutation p < 0.05 and the whole paired 95% interval above zero) while accuracy did not fall
    significantly; otherwise what is missing."""
    gains = [
        name
        for name in ("auroc_type2", "dprime_type2")
        if change[name].value > 0 and change[name].significant() and change[name].low > 0
    ]
    accuracy = change["accuracy"]
    lost = accuracy.value < 0 and accuracy.significant()
    acc_text = f"accuracy {accuracy.value:+.3f} (p = {accuracy.p_value:.3f})"
    if gains and not lost:
        shown = "; ".join(
            f"{STATISTICS[g][0]} {change[g].value:+.3f} [{change[g].low:+.3f}, {change[g].high:+.3f}], "
            f"p = {change[g].p_value:.3f}"
            for g in gains
        )
        return (
            f"verdict: learned - {shown}: significant, interval above zero; {acc_text}: not significantly "
            f"lower"
        )
    if gains:
        return f"verdict: not shown - metacognition rose but {acc_text} fell significantly"
    auroc = change["auroc_type2"]
    return (
        f"verdict: not shown - {STATISTICS['auroc_type2'][0]} {auroc.value:+.3f} (p = {auroc.p_value:.3f}) "
        f"and {STATISTICS['dprime_type2'][0]} {change['dprime_type2'].value:+.3f} are not significant gains; "
        f"{acc_text}"
    )
