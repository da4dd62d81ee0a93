"""The probe ceiling: how well a *linear read-out of the model's own hidden states* at the meta question
predicts whether its direct answer is right.

For each question the meta prompt is rendered exactly as the evaluation sends it (chat template or raw),
and the residual stream of the chosen layers is read at its last token, where the meta answer's P(yes) is
read. A logistic-regression probe (standardised features, L2 penalty chosen by an inner cross-validation)
is fitted on k − 1 folds and scores the held-out fold; the AUROC of the pooled out-of-fold scores against
the model's correctness is the **ceiling**: the discrimination a read-out of today's features reaches
without changing them. Folds keep questions of one group together (e.g. one arithmetic fact in both operand
orders) and are stratified by correctness. The same folds give the AUROC of a probe on a baseline feature
(e.g. the difficulty level, one-hot), so a ceiling can be read against "the level alone".

A training method that moves AUROC₂ (from P(yes)) halfway from the base model's value to this ceiling has
learned to read half of what is readable.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings, build_prompts
from metalight.methods.probes.extraction import SpanText, extract_features
from metalight.metrics.registry import compute_values

L2_GRID = (1e-3, 1e-2, 1e-1, 1.0)


@dataclass
class Ceiling:
    """Cross-validated probe AUROCs: ``by_layer`` {layer: AUROC}, the ``best_layer`` and its ``auroc``, and
    ``baselines`` {name: AUROC} of probes on other features, all on the same folds; ``n`` questions,
    ``folds``."""

    by_layer: dict[int, float]
    best_layer: int
    auroc: float
    n: int
    folds: int
    baselines: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready values."""
        return {
            "auroc": self.auroc,
            "best_layer": self.best_layer,
            "by_layer": {str(k): v for k, v in self.by_layer.items()},
            "n": self.n,
            "folds": self.folds,
            "baselines": dict(self.baselines),
        }


def meta_question_texts(tokenizer, records, settings: EvalSettings) -> list[SpanText]:
    """The meta prompts as the evaluation renders them, as spans whose last token is probed."""
    _, meta = build_prompts(tokenizer, records, settings)
    return [SpanText(p.text, 0, len(p.text), p.templated) for p in meta]


def meta_question_features(
    model, tokenizer, records, settings: EvalSettings, layers: Sequence[int], batch_size: int = 16
) -> dict[int, Tensor]:
    """``{layer: float32 [n, hidden]}``: the residual stream at the meta prompt's last token."""
    model.eval()
    return extract_features(
        model,
        tokenizer,
        meta_question_texts(tokenizer, records, settings),
        layers,
        "last",
        batch_size,
        max_tokens=settings.max_input_tokens,
    )


def grouped_folds(
    labels: Tensor, groups: Sequence[Hashable] | None, folds: int, seed: int
) -> list[list[int]]:
    """Row indices of ``folds`` folds: whole groups per fold, each fold with a similar share of positives
    (groups dealt round-robin within their majority label after a seeded shuffle)."""
    n = len(labels)
    groups = list(range(n)) if groups is None else list(groups)
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    rng = random.Random(seed)
    out: list[list[int]] = [[] for _ in range(folds)]
    for positive in (True, False):
        keys = [g for g, rows in members.items() if (labels[rows].float().mean() >= 0.5) == positive]
        keys.sort(key=str)
        rng.shuffle(keys)
        for k, g in enumerate(keys):
            out[k % folds].extend(members[g])
    return out


def fit_logistic(x: Tensor, y: Tensor, l2: float, steps: int = 100) -> tuple[Tensor, Tensor]:
    """An L2-penalised logistic regression ``(w, b)`` on standardised features, fitted by L-BFGS:
    mean BCE + l2/2 · |w|²."""
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    x, y = x.double(), y.double()
    optimizer = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = (
            torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + 0.5 * l2 * w.square().sum()
        )
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach(), b.detach()


def _standardise(train: Tensor, other: Tensor) -> tuple[Tensor, Tensor]:
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return (train - mean) / std, (other - mean) / std


def _auroc(scores: Tensor, labels: Tensor) -> float:
    """AUROC₂ of the probe's scores (logits) for correctness, by the metric registry (exact, on ranks)."""
    return float(
        compute_values({"correct": labels.bool(), "confidence": scores.double()}, ["auroc_type2"])[
            "auroc_type2"
        ]
    )


def _probe_scores(x_train: Tensor, y_train: Tensor, x_test: Tensor, l2: float) -> Tensor:
    z_train, z_test = _standardise(x_train.double(), x_test.double())
    w, b = fit_logistic(z_train, y_train, l2)
    return z_test @ w + b


def choose_l2(x: Tensor, y: Tensor, groups: Sequence[Hashable] | None, seed: int, folds: int = 3) -> float:
    """The L2 penalty of ``L2_GRID`` with the best inner cross-validated AUROC on (x, y) alone."""
    inner = grouped_folds(y, groups, folds, seed + 1)
    best, best_auroc = L2_GRID[-1], -1.0
    for l2 in L2_GRID:
        scores, labels = [], []
        for k, test in enumerate(inner):
            train = [i for j, f in enumerate(inner) if j != k for i in f]
            if not test or len(set(y[train].tolist())) < 2:
                continue
            scores.append(_probe_scores(x[train], y[train], x[test], l2))
            labels.append(y[test])
        if scores and len(set(torch.cat(labels).tolist())) == 2:
            value = _auroc(torch.cat(scores), torch.cat(labels))
            if value > best_auroc:
                best, best_auroc = l2, value
    return best


def cross_validated_auroc(
    features: Tensor, labels: Tensor, groups: Sequence[Hashable] | None = None, folds: int = 5, seed: int = 0
) -> float:
    """AUROC of the pooled out-of-fold scores of a logistic-regression probe on ``features [n, d]`` for 0/1
    ``labels [n]`` (penalty chosen inside each training fold, so no held-out row tunes it)."""
    labels = labels.long()
    if len(set(labels.tolist())) < 2:
        raise ConfigError(
            "the probe ceiling needs right and wrong answers; every answer here is "
            f"{'right' if bool(labels[0]) else 'wrong'}"
        )
    outer = grouped_folds(labels, groups, folds, seed)
    scores = torch.empty(len(labels), dtype=torch.float64)
    for k, test in enumerate(outer):
        train = [i for j, f in enumerate(outer) if j != k for i in f]
        train_groups = None if groups is None else [groups[i] for i in train]
        l2 = choose_l2(features[train], labels[train], train_groups, seed)
        scores[test] = _probe_scores(features[train], labels[train], features[test], l2)
    return _auroc(scores, labels)


def one_hot(values: Sequence[Hashable]) -> Tensor:
    """``float32 [n, k]`` indicator columns of ``values`` (k distinct values, in sorted order)."""
    keys = sorted(set(values), key=str)
    out = torch.zeros(len(values), len(keys))
    for row, value in enumerate(values):
        out[row, keys.index(value)] = 1.0
    return out


def probe_ceiling(
    features: dict[int, Tensor],
    correct: Sequence[bool],
    groups: Sequence[Hashable] | None = None,
    baselines: dict[str, Tensor] | None = None,
    folds: int = 5,
    seed: int = 0,
) -> Ceiling:
    """The ceiling (best layer's cross-validated AUROC) and each baseline feature set's, on the same folds."""
    labels = torch.tensor([bool(c) for c in correct], dtype=torch.long)
    by_layer = {
        layer: cross_validated_auroc(x, labels, groups, folds, seed) for layer, x in sorted(features.items())
    }
    best = max(by_layer, key=by_layer.get)
    others = {
        name: cross_validated_auroc(x, labels, groups, folds, seed) for name, x in (baselines or {}).items()
    }
    return Ceiling(by_layer, best, by_layer[best], len(labels), folds, others)
