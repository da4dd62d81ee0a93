"""Helpers for ``scripts/bench_*.py``: timing (warm-up, median of repeats; training-step clocks), alternating
rounds of two sides, peak memory, and the JSON result file. Every clock synchronises CUDA before it reads the
time."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import shlex
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from metalight.io import atomic_write_json

BENCH_DIR = Path("docs/benchmarks")


@dataclass
class BenchResult:
    """One benchmark number: ``value`` in ``unit``, its ``target`` (e.g. ">= 0.9"), whether it was met."""

    name: str
    value: float
    unit: str
    target: str | None = None
    reference: str | None = None
    met: bool | None = None
    note: str | None = None


def sync() -> None:
    """Wait for queued CUDA work (nothing on CPU), so that a clock read after it sees the work done."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> tuple[float, Any]:
    """Median wall time (s) of ``fn`` over ``repeats`` runs after ``warmup`` runs; returns (median, last
    output)."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        out = fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


class StepClock:
    """Wall time of each training step, for a framework's step-begin / step-end hooks: :meth:`start` at the
    beginning, :meth:`stop` (with anything to record beside the time) at the end; ``steps`` holds one row per
    step, ``{"step_time": seconds, **recorded}``."""

    def __init__(self):
        self.steps: list[dict[str, float]] = []
        self._start = 0.0

    def start(self) -> None:
        """The step begins."""
        sync()
        self._start = time.perf_counter()

    def stop(self, **recorded: float) -> dict[str, float]:
        """The step ends: its row (seconds since :meth:`start` and ``recorded``), also appended to
        ``steps``."""
        sync()
        row = {"step_time": time.perf_counter() - self._start, **recorded}
        self.steps.append(row)
        return row

    def elapsed(self) -> float:
        """Seconds since :meth:`start`, without ending the step."""
        sync()
        return time.perf_counter() - self._start


def alternate_rounds(
    rounds: int,
    sides: tuple[str, str],
    run: Callable[[str], dict[str, Any]],
    report: Callable[[str, dict[str, Any]], None] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """``rounds`` runs of each of two ``sides``, their order swapped every round so that neither always runs
    on a warmer (or busier) machine: ``{side: [run(side) per round]}``; ``report(side, result)`` after
    each."""
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for round_ in range(rounds):
        for side in sides if round_ % 2 == 0 else sides[::-1]:
            runs[side].append(run(side))
            if report is not None:
                report(side, runs[side][-1])
    return runs


def check(value: float, target: str) -> bool:
    """Whether ``value`` meets a target written as ">= x" or "<= x"."""
    op, threshold = target.split()
    return value >= float(threshold) if op == ">=" else value <= float(threshold)


def machine() -> str:
    """A short description of this machine: CPU cores or GPU name, torch version."""
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    else:
        device = f"{os.cpu_count()}-core CPU ({platform.machine()}, {torch.get_num_threads()} torch threads)"
    return f"{device}, torch {torch.__version__}, python {sys.version.split()[0]}"


def write_results(
    area: str,
    results: list[BenchResult],
    model: str,
    command: str,
    extra: dict[str, Any] | None = None,
    out_dir: Path = BENCH_DIR,
) -> Path:
    """Print a table and write ``docs/benchmarks/<area>.json``."""
    width = max(len(r.name) for r in results)
    for r in results:
        status = "" if r.met is None else ("  met" if r.met else "  NOT met")
        print(
            f"{r.name:<{width}}  {r.value:10.3f} {r.unit:<8} target {r.target or '-':<8} "
            f"vs {r.reference or '-'}{status}"
        )
    data = {
        "area": area,
        "machine": machine(),
        "model": model,
        "results": [asdict(r) for r in results],
        "command": command,
        "date": datetime.date.today().isoformat(),
        **(extra or {}),
    }
    return atomic_write_json(out_dir / f"{area}.json", data)


def invocation() -> str:
    """The command line this script was started with, as typed (``python scripts/x.py --flag v``), so
    results record the sizes they were measured at."""
    script = Path(sys.argv[0])
    with contextlib.suppress(ValueError):
        script = script.resolve().relative_to(Path.cwd())
    return " ".join(["python", script.as_posix(), *map(shlex.quote, sys.argv[1:])])


_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size now, in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE


class PeakMemory:
    """Peak memory above the level at :meth:`start` (bytes, ``extra`` once stopped), as a context manager or
    with :meth:`start` / :meth:`stop` (a second ``start`` is ignored, so a per-step hook may call it).

    On CUDA it reads ``torch.cuda.max_memory_allocated``; on CPU a thread samples the resident set every
    ``interval`` seconds (allocations shorter than that can be missed; the default catches tensor-sized
    buffers, which live for milliseconds at least).
    """

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.0005):
        self.device, self.interval = torch.device(device), interval
        self.extra = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, resident_bytes())
            time.sleep(self.interval)

    def start(self) -> PeakMemory:
        """Take the starting level and begin measuring (once)."""
        if self._started:
            return self
        self._started = True
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._peak = resident_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> int:
        """Stop measuring; returns (and keeps in ``extra``) the peak above the starting level, in bytes."""
        if not self._started:
            return self.extra
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.extra = torch.cuda.max_memory_allocated(self.device) - self._start
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._peak = max(self._peak, resident_bytes())
            self.extra = self._peak - self._start
        return self.extra

    def __enter__(self) -> PeakMemory:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
