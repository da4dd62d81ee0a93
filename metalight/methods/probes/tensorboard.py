"""TensorBoard logging of the neurofeedback experiments, beside the probe run's own Trainer events.

Each experiment's JSON result becomes scalars ``<experiment>/layer<l>/<axis>/<metric>`` (control adds
``/<mode>`` and uses the number of in-context examples N as the step; steering adds ``/alpha<α>``), and
``plots`` adds every figure as an image under ``figures/<file stem>``. Events go to ``<run>/neurofeedback``,
so ``tensorboard --logdir runs`` shows them next to the fit's curves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_IDENTITY = frozenset({"layer", "axis", "mode", "n_examples", "trials", "shuffles", "seed"})


@contextmanager
def summary_writer(log_dir: str | Path) -> Iterator[Any]:
    """A ``torch.utils.tensorboard.SummaryWriter`` on ``log_dir``, flushed and closed on exit."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(log_dir))
    try:
        yield writer
    finally:
        writer.close()


def result_scalars(name: str, results: list[dict[str, Any]]) -> list[tuple[str, float, int]]:
    """``(tag, value, step)`` for every number of every per-(layer, axis) result of experiment ``name``."""
    out = []
    for r in results:
        prefix = f"{name}/layer{r['layer']}/{r['axis']}" + (f"/{r['mode']}" if "mode" in r else "")
        step = int(r["n_examples"]) if "mode" in r else 0
        for key, value in r.items():
            if key in _IDENTITY:
                continue
            if _number(value):
                out.append((f"{prefix}/{key}", float(value), step))
            elif key == "alphas":
                out += [
                    (f"{prefix}/alpha{a['alpha']:g}/{k}", float(v), step)
                    for a in value
                    for k, v in a.items()
                    if k != "alpha" and _number(v)
                ]
    return out


def log_results(log_dir: str | Path, name: str, results: list[dict[str, Any]]) -> int:
    """Write :func:`result_scalars` to ``log_dir``; returns how many were written."""
    scalars = result_scalars(name, results)
    with summary_writer(log_dir) as writer:
        for tag, value, step in scalars:
            writer.add_scalar(tag, value, step)
    return len(scalars)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
