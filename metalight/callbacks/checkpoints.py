"""Checkpoints that survive a full disk and a preemption, and what a checkpoint says about itself.

* :class:`AtomicCheckpointIO` writes every ``.ckpt`` to a temporary file beside it and renames it: a write
  that fails (a full disk) leaves the previous checkpoint as it was and no half-written file.
* :class:`PreemptionCheckpoint` follows Lightning's SLURM requeue handling: Lightning's signal connector notes
  a SIGTERM and its loops stop at the next step boundary (``SIGTERMException``); this callback then saves a
  resumable ``last.ckpt`` where ``--ckpt_path last`` finds it (Lightning's own handler saves
  ``hpc_ckpt_N.ckpt`` only on SLURM's requeue signal). A SIGINT stops anywhere, possibly inside a step, so
  nothing is saved then.
* :func:`trained_questions` rebuilds the training split a checkpoint was fitted on (to count a validation's
  overlap); :mod:`metalight.models.checkpoints` reads its header.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from metalight.errors import MetalightError
from metalight.io import atomic_write

log = logging.getLogger(__name__)
LAST = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION


class CheckpointWriteError(MetalightError):
    """A checkpoint could not be written (full disk, read-only directory); nothing half-written was left."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local writes are atomic (temporary file + rename); a failed write raises
    :class:`CheckpointWriteError` naming the file and what was kept."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None or "://" in str(path):  # remote storage: Lightning's own path
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        try:
            atomic_write(path, lambda handle: torch.save(checkpoint, handle))
        except OSError as err:
            kept = (
                f"the previous {path.name} there is kept"
                if path.exists()
                else f"no {path.name} existed before"
            )
            raise CheckpointWriteError(
                f"cannot write checkpoint {path} ({err.strerror or err}): nothing half-written "
                f"was left and {kept}; free space there (or point the checkpoint's dirpath at "
                f"another disk) and resume from the last good checkpoint"
            ) from None


def trained_questions(path: str | Path) -> set[str] | None:
    """The questions of the training split a checkpoint was fitted on, rebuilt from the data module's saved
    settings (same class, file, seed and fractions); ``None`` when they cannot be rebuilt locally (no saved
    data settings, hub data, a file that moved)."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        settings = dict(checkpoint.get("datamodule_hyper_parameters") or {})
        class_path = settings.pop("_class_path", None)
        if not class_path or settings.get("hub_name"):
            return None
        module, _, name = class_path.rpartition(".")
        datamodule = getattr(importlib.import_module(module), name)(
            **{k: v for k, v in settings.items() if not k.startswith("_")}
        )
        datamodule.setup("fit")
        return {record.question for record in datamodule.records("train")}
    except Exception as err:
        log.info("the training rows of %s could not be rebuilt (%s): overlap not counted", path, err)
        return None


class PreemptionCheckpoint(Callback):
    """On SIGTERM during ``fit``: save a resumable ``last.ckpt`` (beside the ModelCheckpoint's files, else in
    ``<run dir>/checkpoints``) and add a note saying where; also makes every checkpoint write atomic
    (:class:`AtomicCheckpointIO`, when the strategy uses Lightning's default writer)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()

    @staticmethod
    def path(trainer: Trainer) -> Path:
        """Where the preemption checkpoint goes: ``last.ckpt`` in the checkpoint directory of the run."""
        callback = trainer.checkpoint_callback
        directory = getattr(callback, "dirpath", None) if isinstance(callback, ModelCheckpoint) else None
        return Path(directory or Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints") / LAST

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if trainer.state.fn != TrainerFn.FITTING:
            return
        if isinstance(exception, KeyboardInterrupt):
            exception.add_note(
                "no checkpoint was saved: SIGINT can stop a step half-way (send SIGTERM to stop at a "
                "step boundary with a resumable checkpoint)"
            )
            return
        if not isinstance(exception, SIGTERMException):
            return
        path = self.path(trainer)
        try:
            trainer.save_checkpoint(path)
        except (CheckpointWriteError, OSError) as err:
            exception.add_note(f"the resumable checkpoint could not be saved: {err}")
            return
        exception.add_note(
            f"at step {trainer.global_step} (epoch {trainer.current_epoch}), a resumable checkpoint is "
            f"saved as {path}: continue with the same command and --ckpt_path last"
        )
