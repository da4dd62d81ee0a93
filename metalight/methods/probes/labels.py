"""Neural labels from axis scores (upstream ``utils.py``): the binarizer and the even-point Likert binner."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from metalight.errors import DataError


def binarize(scores: Tensor) -> Tensor:
    """Upstream ``Binarizer``: label 1 where the score is ≥ 0, else 0 (long tensor, same shape)."""
    return (scores >= 0).long()


@dataclass(frozen=True)
class LikertBinner:
    """Upstream ``EvenLikertBinner(points)``: scores → 1..points, the negative scores split into points/2 bins
    at the quantiles of the fitted negative scores (1 = most negative), the non-negative ones likewise into
    points/2 + 1..points. The sign of the score (the binary label) is kept: label > points/2 iff score ≥ 0."""

    negative_edges: Tensor
    positive_edges: Tensor
    points: int = 6

    @classmethod
    def fit(cls, scores: Tensor, points: int = 6, where: str = "the scores") -> LikertBinner:
        """Bin edges from ``scores`` (1-D): the (k / (points/2))-quantiles, k = 1..points/2 − 1, of each
        half."""
        if points < 2 or points % 2:
            raise DataError(f"a Likert binner needs an even number of points ≥ 2, got {points}")
        scores = scores.double().flatten()
        negative, positive = scores[scores < 0], scores[scores >= 0]
        if not len(negative) or not len(positive):
            raise DataError(
                f"{where} are all {'non-negative' if len(positive) else 'negative'}; the Likert "
                f"binner needs scores on both sides of 0 (use the binarizer)"
            )
        half = points // 2
        q = torch.arange(1, half, dtype=torch.float64) / half
        return cls(torch.quantile(negative, q), torch.quantile(positive, q), points)

    def transform(self, scores: Tensor) -> Tensor:
        """Likert labels 1..points (long tensor, the shape of ``scores``)."""
        scores = scores.double()
        low = 1 + torch.bucketize(scores, self.negative_edges, right=True)
        high = self.points // 2 + 1 + torch.bucketize(scores, self.positive_edges, right=True)
        return torch.where(scores >= 0, high, low)


def label_rows(run, configs, binner: str = "binary", points: int = 6) -> list[dict]:
    """One row ``{id, layer, axis, score, label}`` per held-out example of a ``ProbeRun`` and
    ``(layer, axis)``; the Likert binner is fitted per (layer, axis) on those same held-out scores."""
    rows = []
    for layer, axis in configs:
        scores = run.axis_scores(layer, axis)
        if binner == "likert":
            labels = LikertBinner.fit(scores, points, f"the layer {layer} {axis} scores").transform(scores)
        else:
            labels = binarize(scores)
        rows += [
            {"id": e.id, "layer": layer, "axis": axis, "score": float(s), "label": int(lab)}
            for e, s, lab in zip(run.examples, scores, labels)
        ]
    return rows
