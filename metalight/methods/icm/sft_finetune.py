"""The built-in fine-tune of ICM's iterative loop: ``SFTModule`` on the elicited labels.

The rows are prompt-completion pairs (``<claim prompt>`` → ``" True"`` / ``" False"``), trained as raw text
(no chat template: ICM's prompts are raw text, as upstream) with the loss on the completion only, in a
separate Lightning ``Trainer`` on one device; the model is then written as a ``save_pretrained`` directory
(LoRA merged into the weights) whose path is the next round's model spec.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from lightning.pytorch import Trainer

from metalight.data.sources.prompt_completion import PromptCompletionDataModule
from metalight.methods.icm.finetune import IterativeFineTuning
from metalight.methods.sft.module import SFTModule, TargetSettings
from metalight.methods.sft.optim import SFTAdamW
from metalight.models.lora import LoraSettings

log = logging.getLogger(__name__)


def sft_fine_tune(
    initial_model: str, rows_path: Path, output_dir: Path, settings: IterativeFineTuning
) -> str:
    """Fine-tune ``initial_model`` on the rows at ``rows_path`` with ``SFTModule``; returns the path of the
    exported model (``output_dir/model``)."""
    module = SFTModule(
        model=initial_model,
        dtype=settings.dtype,
        targets=TargetSettings(builder="given"),
        lora=LoraSettings() if settings.lora else None,
        chat_template="never",
        completion_only_loss=True,
        optimizer=partial(SFTAdamW, lr=settings.lr),
        max_length=settings.max_length,
        export="none",
    )
    data = PromptCompletionDataModule(
        path=str(rows_path),
        val_fraction=0.0,
        test_fraction=0.0,
        batch_size=settings.batch_size,
        seed=settings.seed,
    )
    trainer = Trainer(
        max_epochs=settings.max_epochs,
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data)
    path = module.export_hf(Path(output_dir) / "model", "merged" if settings.lora else "full")
    log.info(
        "ICM round model: %s fine-tuned on %s -> %s (%d steps)",
        initial_model,
        rows_path,
        path,
        trainer.global_step,
    )
    return str(path)
