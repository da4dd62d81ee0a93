"""Peak resident memory of a block of code on CPU (sampled), or the CUDA allocator's peak on GPU."""

from __future__ import annotations

import os
import threading
import time

import torch

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """This process's resident set size now, in bytes (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * _PAGE


class PeakMemory:
    """Context manager measuring the peak memory above the level at entry (bytes, ``extra``).

    On CUDA it reads ``torch.cuda.max_memory_allocated``; on CPU a thread samples the resident set every
    ``interval`` seconds (allocations shorter than that can be missed; the default catches tensor-sized
    buffers, which live for milliseconds at least).
    """

    def __init__(self, device: torch.device | str = "cpu", interval: float = 0.0005):
        self.device, self.interval = torch.device(device), interval
        self.extra = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, resident_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
        else:
            self._start = self._peak = resident_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.extra = torch.cuda.max_memory_allocated(self.device) - self._start
        else:
            self._stop.set()
            self._thread.join()
            self._peak = max(self._peak, resident_bytes())
            self.extra = self._peak - self._start
