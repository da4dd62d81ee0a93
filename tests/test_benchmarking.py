"""The benchmark helpers: a step clock with recorded values, alternating rounds, peak memory started once."""

import os
import subprocess
import sys
from pathlib import Path

from metalight.benchmarking import StepClock, alternate_rounds


def test_the_step_clock_keeps_one_row_per_step():
    clock = StepClock()
    for tokens in (3, 5):
        clock.start()
        assert clock.elapsed() >= 0.0
        clock.stop(tokens=tokens)
    assert [row["tokens"] for row in clock.steps] == [3, 5]
    assert all(row["step_time"] >= 0.0 for row in clock.steps)


def test_rounds_alternate_which_side_runs_first():
    order = []
    runs = alternate_rounds(3, ("ours", "theirs"), lambda side: order.append(side) or {"side": side})
    assert order == ["ours", "theirs", "theirs", "ours", "ours", "theirs"]
    assert [r["side"] for r in runs["ours"]] == ["ours"] * 3


def test_peak_memory_sees_an_allocation_and_starts_once():
    # In a fresh process: inside the suite the allocator may hand back pages an earlier test freed but kept
    # resident, so a new 64 MiB block need not grow the resident set at all.
    code = """
import os
import subprocess
import sys
from pathlib import Path

import torch
from metalight.benchmarking import PeakMemory
memory = PeakMemory(interval=0.001)
memory.start()
memory.start()  # a per-step hook calls it again: the starting level stays the first one
block = torch.ones(64, 2**20 // 4)  # 64 MiB, touched
block.add_(1.0)
grown = memory.stop()
del block
print(grown, memory.extra)
"""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    grown, extra = map(int, out.stdout.split())
    assert grown >= 32 * 2**20 and extra == grown
