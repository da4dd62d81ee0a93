"""Probe axes over pooled features, and the saved ``ProbeSet`` (upstream ``analysis/classifiers.py``).

Every axis is a unit direction ``u`` with an offset ``c`` and a scale ``s``: score(x) = (x·u + c) / s, and the
*neural label* is 1 if score ≥ 0 else 0 (upstream ``Binarizer``).

* **PC k** (``PCAScorer``): the k-th principal component of the mean-centred train features (torch SVD;
  upstream keeps min(n, d) − 1 components, so PC k needs more than k train rows and k < d); c = −mean·u,
  s = std of the train projections (ddof 0). The labels are not used and no sign is fitted; the sign is made
  deterministic as scikit-learn ≥ 1.5 does (the largest-magnitude entry of u is positive).
* **LR** (``LogisticRegression``): a linear head w·x + b trained on the dataset labels (BCE + L2, see
  :class:`metalight.methods.probes.module.ProbeModule`); u = w/|w|, c = b/|w|, and s = std of the train
  decisions divided by |w|, so the score is upstream's decision / std (ddof 0).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metalight.errors import ConfigError, DataError

PAPER_PCS = (1, 2, 4, 8, 32, 128, 512)
"""The principal components the paper reports (upstream ``configs/nf_exp1.yml``)."""


def check_labels(labels: Tensor, where: str = "train split") -> None:
    """``DataError`` unless the labels hold both 0 and 1 (a probe cannot be fitted to one class)."""
    values = set(torch.unique(labels).tolist())
    if values != {0, 1}:
        raise DataError(
            f"the {where} has labels {sorted(values)}: a probe needs both classes 0 and 1; check "
            f"the dataset's label column, balance, n_sample and max_samples"
        )


def available_pcs(pcs: Sequence[int], n_rows: int, dim: int) -> list[int]:
    """The requested PCs that exist with ``n_rows`` train rows of ``dim`` features (k ≤ min(n, d) − 1)."""
    if any(k < 1 for k in pcs):
        raise ConfigError(f"pcs {list(pcs)}: principal components are numbered from 1")
    return [k for k in pcs if k <= min(n_rows, dim) - 1]


def pca_axes(features: Tensor, pcs: Sequence[int]) -> tuple[Tensor, Tensor, Tensor]:
    """PC axes of ``features [n, d]``: ``(directions [P, d], offsets [P], scales [P])`` for PCs ``pcs``
    (1-based, each ≤ min(n, d) − 1; see :func:`available_pcs`)."""
    x = features.double()
    mean = x.mean(0)
    centred = x - mean
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    if max(pcs) > min(x.shape) - 1:
        raise ConfigError(
            f"PC {max(pcs)} needs more than {max(pcs)} train rows and features; have {tuple(x.shape)}"
        )
    directions = vh[[k - 1 for k in pcs]]
    peak = directions.abs().argmax(-1, keepdim=True)
    directions = directions * torch.sign(directions.gather(-1, peak))
    projections = centred @ directions.T
    return directions.float(), (-(mean @ directions.T)).float(), projections.std(0, unbiased=False).float()


def linear_axis(weight: Tensor, bias: Tensor, train_features: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The LR axis of a head ``w·x + b`` (raw features): ``(u [d], c, s)``, s from the train decisions."""
    norm = weight.double().norm()
    if norm == 0:
        raise ConfigError(
            "the logistic-regression head has zero weights: it was never trained (validate / "
            "test a ProbeModule with --ckpt_path of a fit run) or l2 is too large"
        )
    decisions = train_features.double() @ weight.double() + bias.double()
    scale = decisions.std(unbiased=False) / norm
    return (weight.double() / norm).float(), (bias.double() / norm).float(), scale.float()


def axis_scores(features: Tensor, directions: Tensor, offsets: Tensor, scales: Tensor) -> Tensor:
    """Scores ``[n, A]`` of ``features [n, d]`` on ``A`` axes."""
    return (features.float() @ directions.T + offsets) / scales


@dataclass
class ProbeSet:
    """Fitted axes for several layers: ``directions [L, A, d]`` (unit), ``offsets``/``scales`` ``[L, A]``.

    ``axes`` names the A axes (``lr``, ``pc1``, ...); ``meta`` records what built them (model spec and
    fingerprint, dataset, span, prompt version, train size); ``metrics`` the per-layer probe metrics.
    """

    layers: list[int]
    axes: list[str]
    directions: Tensor
    offsets: Tensor
    scales: Tensor
    meta: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    def index(self, layer: int, axis: str) -> tuple[int, int]:
        """Positions of ``layer`` and ``axis``; ``ConfigError`` naming the available ones."""
        if layer not in self.layers or axis not in self.axes:
            raise ConfigError(
                f"no probe for layer {layer} / axis {axis!r}; this probe set has layers "
                f"{self.layers} and axes {self.axes}"
            )
        return self.layers.index(layer), self.axes.index(axis)

    def direction(self, layer: int, axis: str) -> Tensor:
        """The unit direction ``[d]`` of one axis (what steering adds to the residual stream)."""
        li, ai = self.index(layer, axis)
        return self.directions[li, ai]

    def scale(self, layer: int, axis: str) -> float:
        """The axis's train std in projection units: one score unit = this much along the direction."""
        li, ai = self.index(layer, axis)
        return float(self.scales[li, ai])

    def score(self, features: dict[int, Tensor]) -> Tensor:
        """Scores ``[n, L, A]`` of per-layer features ``{layer: [n, d]}`` (every probe layer needed)."""
        missing = [layer for layer in self.layers if layer not in features]
        if missing:
            raise ConfigError(f"features for layers {missing} are missing")
        return torch.stack(
            [
                axis_scores(features[layer], self.directions[i], self.offsets[i], self.scales[i])
                for i, layer in enumerate(self.layers)
            ],
            dim=1,
        )

    def check_model(self, fingerprint: str, spec: str) -> None:
        """``ConfigError`` if these probes were fitted on another model's activations."""
        if self.meta.get("model_fingerprint") not in (None, fingerprint):
            raise ConfigError(
                f"these probes were fitted on activations of {self.meta.get('model_spec')!r} "
                f"(fingerprint {self.meta['model_fingerprint']}), not of {spec!r} (fingerprint "
                f"{fingerprint}); an axis only scores the model it was fitted on — refit the "
                f"probes (cross-model label transfer is `predexp`)"
            )

    def save(self, path: str | Path) -> Path:
        """Write one safetensors file (tensors + JSON metadata), atomically."""
        from metalight.methods.probes.cache import save_safetensors_atomic

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {"layers": self.layers, "axes": self.axes, "meta": self.meta, "metrics": self.metrics}
        tensors = {
            "directions": self.directions.contiguous(),
            "offsets": self.offsets.contiguous(),
            "scales": self.scales.contiguous(),
        }
        save_safetensors_atomic(path, tensors, metadata={"probeset": json.dumps(header, default=str)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProbeSet:
        """Read a file written by :meth:`save`."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise ConfigError(
                f"probe file not found: {path}; fit probes first (python cli.py fit --config "
                f"configs/probes/<dataset>.yaml) and pass its run's probes.safetensors"
            )
        with safe_open(str(path), framework="pt") as handle:
            header = json.loads((handle.metadata() or {}).get("probeset", "null") or "null")
            if header is None:
                raise ConfigError(f"{path} is not a metalight probe file (no probeset metadata)")
            tensors = {name: handle.get_tensor(name) for name in ("directions", "offsets", "scales")}
        return cls(
            header["layers"], header["axes"], **tensors, meta=header["meta"], metrics=header["metrics"]
        )
