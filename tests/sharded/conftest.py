"""The strategy matrix's cells, run once per session and shared by the matrix and the two-node tests, and the
matrix's tolerances for comparing two runs."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from tests.sharded.nodes import run_tree
from tests.sharded.strategy_cell import SINGLE, cell_command

ROOT = Path(__file__).resolve().parents[2]
CPU2 = ("--trainer.accelerator", "cpu", "--trainer.precision", "32-true", "--trainer.devices", "2")
HAS_DEEPSPEED = importlib.util.find_spec("deepspeed") is not None
DEEPSPEED_HINT = "deepspeed is not installed: DS_BUILD_OPS=0 pip install '.[deepspeed]' torch==2.13.0"
# Count-based metrics: the same greedy answers give exactly the same values.
COUNT_METRICS = ("accuracy", "yes_ratio", "raw_alignment", "meta_unparsed_rate", "false_alarm_rate")


def skip_without_deepspeed(name: str) -> None:
    """Skip (with the install hint) a DeepSpeed cell where the package is missing."""
    if "deepspeed" in name and not HAS_DEEPSPEED:
        pytest.skip(DEEPSPEED_HINT)


def run_cell(out: Path, name: str, model_dir: Path) -> dict:
    """Run one cell in fresh processes on this machine (2 gloo processes; 1 for a ``SINGLE`` cell); returns
    its ``result.json`` (fails with the cell's log tail)."""
    skip_without_deepspeed(name)
    launch = ("--trainer.accelerator", "cpu", "--trainer.devices", "1") if name in SINGLE else CPU2
    proc = run_tree(cell_command(out, name, model_dir, *launch))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads((out / "result.json").read_text())


@pytest.fixture(scope="session")
def cells(tmp_path_factory, varied_model_dir):
    """``cells(name) -> (result.json, output directory)`` of a one-machine cell, each run once per session."""
    done: dict[str, dict] = {}

    def get(name: str) -> tuple[dict, Path]:
        out = tmp_path_factory.getbasetemp() / "matrix" / name
        if name not in done:
            done[name] = run_cell(out, name, varied_model_dir)
        return done[name], out

    return get


def same(a: float, b: float, atol: float = 0.0) -> bool:
    """Equal within ``atol``, NaN equal to NaN (undefined metrics)."""
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) <= atol


def report_differences(report: dict, reference: dict) -> dict:
    """The metrics where two reports of the same greedy answers disagree: count metrics must be equal exactly;
    metrics that sum confidences (ECE, Brier, ...) are reduced across ranks in another order, so they may
    differ by fp rounding (1e-6)."""
    differ = {k: (report[k], reference[k]) for k in COUNT_METRICS if not same(report[k], reference[k])}
    differ.update(
        {
            k: (v, reference[k])
            for k, v in report.items()
            if isinstance(v, float) and not same(v, reference[k], 1e-6)
        }
    )
    return differ
