"""Lightning's rich progress bar, with a train label that makes sense for runs bounded by steps."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar


class StepAwareProgressBar(RichProgressBar):
    """The rich progress bar; when training is bounded by ``max_steps`` alone (``max_epochs`` -1, as in the
    ES and ICM configs) the train bar reads "Epoch 0 · max 12 steps" instead of Lightning's "Epoch 0/-2"."""

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if trainer.max_epochs is None or trainer.max_epochs >= 0:
            return super()._get_train_description(current_epoch)
        text = f"Epoch {current_epoch}"
        if trainer.max_steps is not None and trainer.max_steps > 0:
            text += f" · max {trainer.max_steps} steps"
        return f"{text:{len(self.validation_description)}}"
