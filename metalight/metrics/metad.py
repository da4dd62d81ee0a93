"""meta-d' and M-ratio by maximum likelihood (Maniscalco & Lau 2012, 2014), and their cast to QA.

The fit follows ``fit_meta_d_MLE.m`` (Maniscalco) and its Python port in metadpy ``mle.py``:
an SDT observer with sensitivity meta-d' and the same relative type-1 criterion c' = c / d'
must reproduce the observed confidence ratings given each type-1 response. Only the type-2
counts enter the likelihood; the type-1 d' and c come from the type-1 rates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import ndtr, ndtri
from torch import Tensor

from metalight.metrics._inputs import ScoredRowsMetric, scored_rows, warn

Binning = Literal["uniform", "quantile"]
_META_D_BOUND, _CRITERION_BOUND, _MIN_GAP = 10.0, 20.0, 1e-5  # as fit_meta_d_MLE.m


@dataclass(frozen=True)
class MetaDFit:
    """Result of :func:`fit_meta_d_mle`; sensitivities in d' units (RMS units when s != 1).

    ``t2_criteria_rS1`` / ``t2_criteria_rS2`` are the fitted type-2 criteria for "S1" / "S2"
    responses, from the most to the least extreme for rS1 and the reverse for rS2, in the
    meta-d' space; ``log_likelihood`` is that of the (padded) type-2 counts.
    """

    d_prime: float
    meta_d_prime: float
    m_ratio: float
    m_diff: float
    criterion: float
    meta_criterion: float
    t2_criteria_rS1: tuple[float, ...]
    t2_criteria_rS2: tuple[float, ...]
    log_likelihood: float
    converged: bool
    message: str


def _as_counts(name: str, x: Any) -> np.ndarray:
    counts = np.asarray(x, dtype=np.float64)
    if counts.ndim != 1 or counts.size < 4 or counts.size % 2:
        raise ValueError(f"{name} must be 1-D with an even length >= 4 (2 × n_ratings), got {counts.shape}")
    if not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError(f"{name} must hold finite counts >= 0")
    return counts


def _binned_log_likelihood(
    counts: np.ndarray, edges: np.ndarray, mu: float, sd: float, upper: bool
) -> tuple[float, float, np.ndarray]:
    """Log-likelihood of rating counts in the bins between ``edges`` for N(mu, sd) truncated to one
    side of the type-1 criterion, with its derivatives in ``mu`` and in the inner edges.

    ``upper``: the bins lie above the criterion (``edges[0]``), else below it (``edges[-1]``).
    """
    z = (edges - mu) / sd
    density = np.exp(-0.5 * z**2) / (np.sqrt(2 * np.pi) * sd)  # dΦ(z)/d edge; 0 at ±inf
    if upper:  # survival function: accurate far in the upper tail
        survival = ndtr(-z)
        p, side, d_side_d_mu = survival[:-1] - survival[1:], survival[0], density[0]
    else:
        cdf = ndtr(z)
        p, side, d_side_d_mu = cdf[1:] - cdf[:-1], cdf[-1], -density[-1]
    p = np.clip(p, 1e-300, None)
    ratio = counts / p
    log_likelihood = float(np.sum(counts * np.log(p)) - counts.sum() * np.log(side))
    d_mu = float(-np.sum(ratio * np.diff(density)) - counts.sum() * d_side_d_mu / side)
    d_edges = density[1:-1] * (ratio[:-1] - ratio[1:])
    return log_likelihood, d_mu, d_edges


def _type2_log_likelihood(
    params: np.ndarray, counts: np.ndarray, c_prime: float, s: float
) -> tuple[float, np.ndarray]:
    """Log-likelihood of the type-2 counts under (meta-d', criteria) and its gradient.

    ``counts`` rows: correct "S1" responses, incorrect "S1", correct "S2", incorrect "S2", each
    ordered like nR_S1 / nR_S2. The type-1 criterion sits at 0 by shifting the means by
    meta-d'·c', as the .m file does, so the criteria of each response keep one sign.
    """
    meta_d, criteria = params[0], params[1:]
    k = counts.shape[1]
    mu_s1, mu_s2 = -meta_d * (0.5 + c_prime), meta_d * (0.5 - c_prime)
    below = np.concatenate(([-np.inf], criteria[: k - 1], [0.0]))
    above = np.concatenate(([0.0], criteria[k - 1 :], [np.inf]))
    parts = [
        (_binned_log_likelihood(counts[0], below, mu_s1, 1.0, upper=False), -(0.5 + c_prime), slice(1, k)),
        (_binned_log_likelihood(counts[1], below, mu_s2, 1 / s, upper=False), 0.5 - c_prime, slice(1, k)),
        (_binned_log_likelihood(counts[2], above, mu_s2, 1 / s, upper=True), 0.5 - c_prime, slice(k, None)),
        (_binned_log_likelihood(counts[3], above, mu_s1, 1.0, upper=True), -(0.5 + c_prime), slice(k, None)),
    ]
    total, gradient = 0.0, np.zeros_like(params)
    for (log_likelihood, d_mu, d_edges), d_mu_d_meta_d, criteria_slot in parts:
        total += log_likelihood
        gradient[0] += d_mu * d_mu_d_meta_d
        gradient[criteria_slot] += d_edges
    return total, gradient


def fit_meta_d_mle(nR_S1: Any, nR_S2: Any, s: float = 1.0, pad: bool = True) -> MetaDFit:
    """Fit meta-d' by maximum likelihood to rating counts of a two-stimulus task.

    ``nR_S1`` / ``nR_S2``: counts for stimulus S1 / S2 over the 2K response categories
    ["S1", rating K], ..., ["S1", rating 1], ["S2", rating 1], ..., ["S2", rating K]
    (K = n_ratings, rating K = most confident). With ``pad``, 1 / (2K) is added to every
    cell (as metadpy and the .m file recommend), so empty cells do not break the fit.
    ``s`` = sd(S1) / sd(S2).

    Type 1: d' = Φ⁻¹(HR)/s − Φ⁻¹(FAR), c = −(Φ⁻¹(HR) + Φ⁻¹(FAR)) / (1 + s).
    Type 2: meta-d' and 2K − 2 ordered criteria maximise the likelihood of the ratings given each response,
    with meta-c = meta-d' · c / d' (SLSQP; meta-d' in [−10, 10], criteria in [−20, 0] / [0, 20],
    each at least 1e-5 above the previous). M-ratio = meta-d' / d', M-diff = meta-d' − d'.

    Raises ``ValueError`` for malformed counts, or when d' is 0 or infinite (a type-1 rate
    of 0 or 1 without padding), where the model is undefined.

    Example (metadpy's test data, published d' 1.535, meta-d' 1.634, M-ratio 1.064):

    >>> fit = fit_meta_d_mle([52, 32, 35, 37, 26, 12, 4, 2], [2, 5, 15, 22, 33, 38, 40, 45])
    >>> round(fit.d_prime, 3), round(fit.meta_d_prime, 3), round(fit.m_ratio, 3)
    (1.535, 1.634, 1.064)
    """
    n_s1, n_s2 = _as_counts("nR_S1", nR_S1), _as_counts("nR_S2", nR_S2)
    if n_s1.size != n_s2.size:
        raise ValueError(f"nR_S1 and nR_S2 must have the same length, got {n_s1.size} and {n_s2.size}")
    k = n_s1.size // 2
    if pad:
        n_s1, n_s2 = n_s1 + 1 / (2 * k), n_s2 + 1 / (2 * k)
    if n_s1.sum() == 0 or n_s2.sum() == 0:
        raise ValueError("meta-d' needs trials of both stimuli (nR_S1 and nR_S2 both non-empty)")

    # Rate of "S2 or more confident" at each of the 2K - 1 boundaries; the middle one is type 1.
    hr = np.cumsum(n_s2[::-1])[::-1][1:] / n_s2.sum()
    far = np.cumsum(n_s1[::-1])[::-1][1:] / n_s1.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        z_hr, z_far = ndtri(hr), ndtri(far)
        d1 = z_hr[k - 1] / s - z_far[k - 1]
        boundaries = -(z_hr + z_far) / (1 + s)
    c1 = boundaries[k - 1]
    if not np.isfinite(d1) or not np.isfinite(c1) or abs(d1) < 1e-9:
        raise ValueError(f"type-1 d' is {d1}: meta-d' is undefined (a type-1 rate is 0, 1/2 or 1; pad?)")
    c_prime = c1 / d1

    lower = np.concatenate(([-_META_D_BOUND], np.full(k - 1, -_CRITERION_BOUND), np.zeros(k - 1)))
    upper = np.concatenate(([_META_D_BOUND], np.zeros(k - 1), np.full(k - 1, _CRITERION_BOUND)))
    # Start at meta-d' = d' with the observed type-2 boundaries, made finite, in bounds and ordered.
    start = np.concatenate(([d1], np.delete(boundaries, k - 1) - c1))
    start = np.clip(np.nan_to_num(start, nan=0.0), lower, upper)
    start[1:] = np.maximum.accumulate(start[1:])
    start[1:] += _MIN_GAP * (np.arange(2 * k - 2) - (k - 1))  # strictly increasing, halves stay apart
    start = np.clip(start, lower, upper)

    counts = np.stack([n_s1[:k], n_s2[:k], n_s2[k:], n_s1[k:]])
    total = counts.sum()

    def objective(params: np.ndarray) -> tuple[float, np.ndarray]:
        # Scaled by the count so the optimiser's tolerances mean the same at any N; the
        # analytic gradient lets SLSQP converge where finite differences stall on flat ridges.
        log_likelihood, gradient = _type2_log_likelihood(params, counts, c_prime, s)
        return -log_likelihood / total, -gradient / total

    gaps = np.zeros((2 * k - 3, 2 * k - 1))  # criteria[i + 1] - criteria[i] >= 1e-5
    for i in range(2 * k - 3):
        gaps[i, i + 1], gaps[i, i + 2] = -1.0, 1.0
    result = minimize(
        objective,
        start,
        jac=True,
        method="SLSQP",
        bounds=list(zip(lower, upper)),
        constraints=[{"type": "ineq", "fun": lambda x: gaps @ x - _MIN_GAP, "jac": lambda x: gaps}],
        options={"maxiter": 1000, "ftol": 1e-12},
    )
    meta_d1 = float(result.x[0])
    criteria = result.x[1:] + meta_d1 * c_prime
    rms = np.sqrt(2 / (1 + s**2)) * s  # d_a units when s != 1
    d_prime, meta_d_prime = float(rms * d1), float(rms * meta_d1)
    return MetaDFit(
        d_prime=d_prime,
        meta_d_prime=meta_d_prime,
        m_ratio=meta_d_prime / d_prime,
        m_diff=meta_d_prime - d_prime,
        criterion=float(c1),
        meta_criterion=float(meta_d1 * c_prime),
        t2_criteria_rS1=tuple(float(c) for c in criteria[: k - 1]),
        t2_criteria_rS2=tuple(float(c) for c in criteria[k - 1 :]),
        log_likelihood=-float(result.fun) * float(total),
        converged=bool(result.success),
        message=str(result.message),
    )


def confidence_ratings(confidence: Tensor, n_ratings: int = 4, binning: Binning = "uniform") -> Tensor:
    """Discrete ratings 1..n_ratings (n_ratings = most confident) of confidences in [0, 1].

    ``uniform``: equal-width bins of [0, 1] (1.0 falls in the top bin). ``quantile``: bins
    holding about equal numbers of rows (edges at the k/n quantiles; ties may empty a bin).
    """
    if binning == "uniform":
        edges = torch.linspace(0, 1, n_ratings + 1, dtype=torch.float64, device=confidence.device)[1:-1]
    elif binning == "quantile":
        levels = torch.arange(1, n_ratings, dtype=torch.float64, device=confidence.device) / n_ratings
        edges = torch.quantile(confidence.double(), levels)
    else:
        raise ValueError(f"binning must be one of {get_args(Binning)}, got {binning!r}")
    return torch.bucketize(confidence.double(), edges, right=True) + 1


def cast_to_two_stimuli(correct: Tensor, ratings: Tensor, n_ratings: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts (nR_S1, nR_S2) of the symmetric two-stimulus task that a QA set is cast to.

    Each answer with rating r yields one S1 trial (correct → "S1" response, wrong → "S2", with
    rating r) and its mirror S2 trial (correct → "S2", wrong → "S1"). So nR_S2 is nR_S1 reversed.
    """
    correct_counts = torch.bincount(ratings[correct] - 1, minlength=n_ratings).cpu().numpy()
    wrong_counts = torch.bincount(ratings[~correct] - 1, minlength=n_ratings).cpu().numpy()
    n_r_s1 = np.concatenate((correct_counts[::-1], wrong_counts)).astype(np.float64)
    return n_r_s1, n_r_s1[::-1].copy()


def meta_d_from_confidence(
    correct: Tensor,
    confidence: Tensor,
    n_ratings: int = 4,
    binning: Binning = "uniform",
    pad: bool = True,
    mask: Tensor | None = None,
) -> MetaDFit:
    """meta-d' of a confidence in being correct, for free-form QA (no stimulus classes).

    QA has correctness and a confidence in [0, 1] but no two stimuli, so it is cast to a
    symmetric two-stimulus task: confidences are binned into ratings (:func:`confidence_ratings`),
    then every answer becomes an S1 trial (correct → "S1" response, wrong → "S2") and a mirrored
    S2 trial (:func:`cast_to_two_stimuli`). The observer is unbiased by construction (c = 0),
    d' = 2·Φ⁻¹(accuracy) (up to padding), and meta-d' is the d' at which an ideal SDT observer's
    confidence would separate correct from wrong answers as well as this one does. Doubling the
    trials leaves the maximum-likelihood point unchanged. d' ≤ 0 (accuracy ≤ 1/2) makes the
    M-ratio meaningless. NaN confidences (and ``mask`` = False rows) are dropped.

    Raises ``ValueError`` when there are no correct or no wrong answers, or accuracy is 1/2.

    Example (accuracy 3/4, no padding: d' = 2·Φ⁻¹(0.75) = 1.349):

    >>> import torch
    >>> correct, confidence = torch.tensor([1, 1, 1, 0]), torch.tensor([0.9, 0.8, 0.3, 0.2])
    >>> fit = meta_d_from_confidence(correct, confidence, pad=False)
    >>> round(fit.d_prime, 3)
    1.349
    """
    correct, confidence = scored_rows(correct, confidence, mask)
    n_correct = int(correct.sum())
    if n_correct in (0, correct.numel()):
        raise ValueError(f"meta-d' needs correct and wrong answers: {n_correct} correct of {correct.numel()}")
    ratings = confidence_ratings(confidence, n_ratings, binning)
    return fit_meta_d_mle(*cast_to_two_stimuli(correct, ratings, n_ratings), pad=pad)


def _meta_d_compute(
    correct: Tensor, confidence: Tensor, n_ratings: int, binning: Binning
) -> dict[str, Tensor]:
    """``{"meta_d_prime", "m_ratio"}`` as float64 scalars; NaN with a warning when not estimable."""
    meta_d_prime = m_ratio = float("nan")
    try:
        fit = meta_d_from_confidence(correct, confidence, n_ratings, binning)
    except ValueError as error:
        warn(f"meta-d' is NaN: {error}")
    else:
        if not fit.converged:
            warn(f"meta-d' is NaN: the fit did not converge ({fit.message})")
        else:
            meta_d_prime = fit.meta_d_prime
            if fit.d_prime > 0:
                m_ratio = fit.m_ratio
            else:
                warn(f"M-ratio is NaN: type-1 d' = {fit.d_prime:.3f} <= 0 (accuracy <= 1/2 in the QA cast)")
    as_tensor = lambda v: torch.tensor(v, dtype=torch.float64, device=correct.device)  # noqa: E731
    return {"meta_d_prime": as_tensor(meta_d_prime), "m_ratio": as_tensor(m_ratio)}


def meta_d_prime(
    correct: Tensor,
    confidence: Tensor,
    n_ratings: int = 4,
    binning: Binning = "uniform",
    mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """Functional :class:`MetaDPrime`: ``{"meta_d_prime", "m_ratio"}``, NaN with a warning where
    :func:`meta_d_from_confidence` would raise."""
    return _meta_d_compute(*scored_rows(correct, confidence, mask), n_ratings, binning)


class MetaDPrime(ScoredRowsMetric):
    """meta-d' and M-ratio of a confidence in being correct, over free-form QA answers.

    Casts the answers to a symmetric two-stimulus task and fits meta-d' by maximum likelihood
    (see :func:`meta_d_from_confidence`, padding 1/(2·n_ratings) per cell). meta-d' is in d'
    units (0 = confidence carries no information about correctness); M-ratio = meta-d' / d'
    (1 = as good as an ideal SDT observer of the same accuracy).

    ``update(correct, confidence, mask=None)``: ``correct`` bool/0-1 [N], ``confidence`` float
    [N] in [0, 1] (NaN drops the row). ``compute()`` returns float64 scalars
    ``{"meta_d_prime", "m_ratio"}``: both NaN, with a warning, when there are no correct or no
    wrong answers or the fit fails; ``m_ratio`` alone NaN when accuracy <= 1/2.

    Example (confidence perfectly separates correct from wrong: high meta-d'):

    >>> import torch
    >>> metric = MetaDPrime(n_ratings=2)
    >>> metric.update(torch.tensor([1] * 30 + [0] * 10), torch.tensor([0.9] * 30 + [0.1] * 10))
    >>> metric.compute()["meta_d_prime"].item() > 3
    True
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, n_ratings: int = 4, binning: Binning = "uniform", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(n_ratings, int) or n_ratings < 2:
            raise ValueError(f"n_ratings must be an int >= 2, got {n_ratings!r}")
        if binning not in get_args(Binning):
            raise ValueError(f"binning must be one of {get_args(Binning)}, got {binning!r}")
        self.n_ratings, self.binning = n_ratings, binning

    def compute(self) -> dict[str, Tensor]:
        """meta-d' and M-ratio over everything seen since the last reset."""
        correct, confidence = self.rows()
        return _meta_d_compute(correct, confidence, self.n_ratings, self.binning)
