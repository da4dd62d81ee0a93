"""How good are ICM's labels? Agreement with gold, beside the baselines the ICM paper compares with.

For one chunk, each method yields a label per claim and is scored by agreement with the gold labels
(claims without gold are skipped):

* ``icm``: the search's labels;
* ``zero_shot``: the sign of each claim's label log-odds with no demonstrations;
* ``random``: uniformly random labels (seeded);
* ``random_demos``: many-shot prediction with every other claim in context under random labels (the
  "random labels in context" baseline of the LessWrong replication);
* ``gold_demos``: many-shot prediction with every other claim under its gold label (the paper's in-context
  "golden label" ceiling), when every claim of the chunk has gold.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from metalight.methods.icm.search import Scorer

METHODS = ("icm", "zero_shot", "random", "random_demos", "gold_demos")


@dataclass
class Agreement:
    """``correct`` of ``total`` claims with gold agree; ``accuracy`` is NaN when there is no gold."""

    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    def __add__(self, other: Agreement) -> Agreement:
        return Agreement(self.correct + other.correct, self.total + other.total)


def agreement(predicted: Sequence[int | None], gold: Sequence[int | None]) -> Agreement:
    """Agreement over the claims that have both a predicted and a gold label."""
    pairs = [(p, g) for p, g in zip(predicted, gold) if p is not None and g is not None]
    return Agreement(sum(p == g for p, g in pairs), len(pairs))


def predict(scorer: Scorer, context_labels: Sequence[int | None], queries: Sequence[int]) -> list[int]:
    """Label each query by the sign of its log-odds with the other labelled claims in context (upstream's
    ``predict_assignment``)."""
    return [int(score > 0) for score in scorer.log_odds(context_labels, queries)] if queries else []


def compare_with_baselines(
    scorer: Scorer,
    icm_labels: Sequence[int | None],
    gold: Sequence[int | None],
    seed: int,
    methods: Iterable[str] = METHODS,
) -> dict[str, Agreement]:
    """Agreement with gold of ICM's labels and of each baseline on one chunk (see module docstring)."""
    n = len(gold)
    everyone = list(range(n))
    rng = random.Random(seed)
    random_labels = [rng.randint(0, 1) for _ in everyone]
    out: dict[str, Agreement] = {}
    for method in methods:
        if method == "icm":
            out[method] = agreement(icm_labels, gold)
        elif method == "zero_shot":
            out[method] = agreement(predict(scorer, [None] * n, everyone), gold)
        elif method == "random":
            out[method] = agreement(random_labels, gold)
        elif method == "random_demos":
            out[method] = agreement(predict(scorer, random_labels, everyone), gold)
        elif method == "gold_demos" and n and all(g is not None for g in gold):
            out[method] = agreement(predict(scorer, list(gold), everyone), gold)
    return out


def summarize(per_chunk: Iterable[dict[str, Agreement]]) -> dict[str, Agreement]:
    """Pool agreements over chunks (claims count equally)."""
    total: dict[str, Agreement] = {}
    for chunk in per_chunk:
        for method, value in chunk.items():
            total[method] = total.get(method, Agreement()) + value
    return total
