"""What every neurofeedback experiment reads: a probe run's axes and its held-out examples with scores."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from metalight.errors import ConfigError, DataError
from metalight.methods.probes.axes import ProbeSet
from metalight.methods.probes.labels import binarize


@dataclass(frozen=True)
class Example:
    """A held-out chat and its axis scores ``[L, A]`` (the probe set's layers and axes)."""

    id: str
    user_prompt: str
    response: str
    label: int
    scores: Tensor


@dataclass
class ProbeRun:
    """A fitted probe run directory (``probes.safetensors`` + ``examples.jsonl``)."""

    path: Path
    probes: ProbeSet
    examples: list[Example]

    @classmethod
    def load(cls, path: str | Path, splits: Sequence[str] = ("val", "test")) -> ProbeRun:
        """Read the run written by ``ProbeModule`` (``python cli.py fit --config configs/probes/...``)."""
        path = Path(path)
        probes = ProbeSet.load(path / "probes.safetensors")
        rows_file = path / "examples.jsonl"
        if not rows_file.is_file():
            raise ConfigError(
                f"{rows_file} not found; point --run at a probe run directory (runs/<name>/version_N)"
            )
        examples = [
            example
            for line, row in _numbered_rows(rows_file)
            if (example := _example(rows_file, line, row, probes, splits)) is not None
        ]
        if not examples:
            raise ConfigError(f"{rows_file} has no examples of splits {list(splits)}")
        return cls(path, probes, examples)

    @property
    def model_spec(self) -> str:
        """The model whose activations the probes were fitted on."""
        return self.probes.meta["model_spec"]

    def neural_labels(self, layer: int, axis: str, examples: Sequence[Example] | None = None) -> list[int]:
        """Neural labels (score ≥ 0) of ``examples`` (default: all) on one axis."""
        return binarize(self.axis_scores(layer, axis, examples)).tolist()

    def axis_scores(self, layer: int, axis: str, examples: Sequence[Example] | None = None) -> Tensor:
        """Scores ``[n]`` of ``examples`` (default: all) on one (layer, axis)."""
        li, ai = self.probes.index(layer, axis)
        return torch.stack([e.scores[li, ai] for e in (self.examples if examples is None else examples)])

    def configs(self, layers: Sequence[int] | None, axes: Sequence[str] | None) -> list[tuple[int, str]]:
        """``(layer, axis)`` pairs to run (default: every probe layer and axis), validated."""
        pairs = [
            (layer, axis) for layer in (layers or self.probes.layers) for axis in (axes or self.probes.axes)
        ]
        for layer, axis in pairs:
            self.probes.index(layer, axis)
        return pairs

    def output_dir(self) -> Path:
        """Where experiments write: ``<run>/neurofeedback``."""
        out = self.path / "neurofeedback"
        out.mkdir(parents=True, exist_ok=True)
        return out


def _numbered_rows(path: Path) -> list[tuple[int, Any]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line, text in enumerate(handle, 1):
            if text.strip():
                try:
                    rows.append((line, json.loads(text)))
                except json.JSONDecodeError as err:
                    raise DataError(
                        f"{path}:{line}: not JSON ({err.msg}); rewrite the run with python cli.py fit"
                    ) from None
    return rows


def _example(path: Path, line: int, row: Any, probes: ProbeSet, splits: Sequence[str]) -> Example | None:
    """The row as an :class:`Example` (``None`` outside ``splits``); ``DataError`` naming file:line if
    malformed."""
    missing = [k for k in _ROW_KEYS if not isinstance(row, dict) or k not in row]
    if missing:
        raise DataError(f"{path}:{line}: missing {missing}; each row needs {list(_ROW_KEYS)}")
    if row["split"] not in splits:
        return None
    scores = torch.tensor(row["scores"], dtype=torch.float32) if _is_grid(row["scores"]) else None
    shape = (len(probes.layers), len(probes.axes))
    if scores is None or tuple(scores.shape) != shape or row["label"] not in (0, 1):
        raise DataError(
            f"{path}:{line}: scores must be a {shape[0]}x{shape[1]} grid of numbers (layers x "
            f"axes of probes.safetensors) and label 0 or 1"
        )
    return Example(str(row["id"]), row["user_prompt"], row["response"], int(row["label"]), scores)


def _is_grid(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(r, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
        for r in value
    )


_ROW_KEYS = ("id", "split", "user_prompt", "response", "label", "scores")


def percentile_layers(layers: Sequence[int], quantiles: Sequence[float] = (0, 25, 50, 75, 100)) -> list[int]:
    """Upstream's default layers: the 0/25/50/75/100th percentiles (numpy 'lower') of the probe layers."""
    ordered = sorted(layers)
    return sorted({ordered[math.floor(q / 100 * (len(ordered) - 1))] for q in quantiles})


def cohen_d(high: Sequence[float], low: Sequence[float]) -> tuple[float, float]:
    """Unpaired Cohen's d (pooled SD, ddof 1) of ``high`` vs ``low`` and its 95% CI half-width 1.96·SE
    (upstream ``analysis/stats_fn.py::calc_cohen_d``); NaN with fewer than two values on a side."""
    a = torch.tensor([v for v in high if not math.isnan(v)], dtype=torch.float64)
    b = torch.tensor([v for v in low if not math.isnan(v)], dtype=torch.float64)
    n1, n2 = len(a), len(b)
    if n1 < 2 or n2 < 2:
        return math.nan, math.nan
    pooled = math.sqrt(((n1 - 1) * a.var().item() + (n2 - 1) * b.var().item()) / (n1 + n2 - 2) + 1e-10)
    d = (a.mean().item() - b.mean().item()) / pooled
    se = math.sqrt((n1 + n2) / (n1 * n2) + d**2 / (2 * (n1 + n2)))
    return d, 1.96 * se
