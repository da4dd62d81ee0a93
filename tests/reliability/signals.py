"""A callback that sends this process a signal at a chosen point, as a scheduler preempting a job would; the
CLI tests add it with ``--trainer.callbacks+=tests.reliability.signals.SignalAt``."""

from __future__ import annotations

import os
import signal

from lightning.pytorch import Callback


class SignalAt(Callback):
    """Send ``signal_name`` to this process after training step ``step`` (fit) or evaluation batch ``batch``
    (validate / test); the handler then runs in the main thread, as for a signal from outside."""

    def __init__(self, signal_name: str = "SIGTERM", step: int | None = None, batch: int | None = None):
        self.signum = getattr(signal, signal_name)
        self.step, self.batch = step, batch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.step is not None and trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if self.batch is not None and batch_idx == self.batch and not trainer.sanity_checking:
            os.kill(os.getpid(), self.signum)

    on_test_batch_end = on_validation_batch_end
