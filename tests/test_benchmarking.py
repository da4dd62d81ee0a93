"""The benchmark helpers: a step clock with recorded values, alternating rounds, peak memory started once."""

import torch

from metalight.benchmarking import PeakMemory, StepClock, alternate_rounds


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
    memory = PeakMemory(interval=0.001)
    memory.start()
    memory.start()  # a per-step hook calls it again: the starting level stays the first one
    block = torch.ones(64, 2**20 // 4)  # 64 MiB, touched
    block.add_(1.0)
    grown = memory.stop()
    del block
    assert grown >= 32 * 2**20 and memory.extra == grown
