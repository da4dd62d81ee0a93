"""Stop training after a budget of process CPU time (all threads of this process), not wall-clock time.

Wall-clock limits (Lightning's ``max_time``) give an arm less work when the machine is busy; a CPU-time budget
gives every arm the same compute however loaded the machine is. With one torch thread, CPU seconds are
seconds of one core.
"""

from __future__ import annotations

import time

from lightning.pytorch import Callback

from metalight.errors import ConfigError


class CPUTimeLimit(Callback):
    """Set ``trainer.should_stop`` once the fit has used ``minutes`` of process CPU time (checked after every
    training step, so the last step may overrun by one step's time).

    Args:
        minutes: the budget, in CPU minutes of this process (> 0).
    """

    def __init__(self, minutes: float):
        if not minutes > 0:
            raise ConfigError(f"CPUTimeLimit.minutes: {minutes} must be > 0")
        self.minutes = minutes
        self._start: float | None = None

    def used_minutes(self) -> float:
        """CPU minutes used since the fit started (0 before)."""
        return 0.0 if self._start is None else (time.process_time() - self._start) / 60

    def on_fit_start(self, trainer, pl_module) -> None:
        self._start = time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.used_minutes() >= self.minutes:
            trainer.should_stop = True
