"""``JudgmentDataModule``: QA questions whose training examples a labelling callback sets every epoch.

The judgment loop (``metalight.methods.judgment.loop.JudgmentLoop``) reads the questions of ``source``
(``records(split)``), collects the model's answers, labels them and calls :meth:`set_train_examples`; the
trainer (``reload_dataloaders_every_n_epochs: 1``) then asks for a new train loader each epoch. Validation
and test loaders are ``source``'s, so the standard dual-prompt metrics still run at each validation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from metalight.data.datamodule import QADataModule, RecordDataset
from metalight.data.examples import SFTExample
from metalight.data.records import collate_records
from metalight.errors import ConfigError


class JudgmentDataModule(LightningDataModule):
    """Questions from ``source``; training examples set by the judgment loop.

    Args:
        source: the QA DataModule the questions come from (its train split is labelled and trained on).
        batch_size: training examples per batch per device.
        seed: seed of the per-epoch shuffle.
    """

    def __init__(self, source: QADataModule, batch_size: int = 16, seed: int = 0):
        super().__init__()
        if batch_size < 1:
            raise ConfigError("JudgmentDataModule: batch_size must be >= 1")
        self.source, self.batch_size, self.seed = source, batch_size, seed
        self.train_examples: list[SFTExample] | None = None
        self.epoch = 0
        self._provide: Callable[[], None] | None = None

    def setup(self, stage: str | None = None) -> None:
        self.source.trainer = getattr(self, "trainer", None)
        self.source.setup(stage)

    def records(self, split: str) -> list:
        """The QA records of ``split`` from ``source``."""
        return self.source.records(split)

    def set_train_examples(self, examples: Sequence[SFTExample], epoch: int = 0) -> None:
        """Examples the next train loader serves (shuffled with ``seed`` + ``epoch``)."""
        self.train_examples, self.epoch = list(examples), epoch

    def defer_train_examples(self, provide: Callable[[], None]) -> None:
        """Have ``provide`` (which calls :meth:`set_train_examples`) run when the next train loader is built,
        not now (a sharded strategy restores a resumed run's state between fit start and the first loader)."""
        self._provide = provide

    def train_dataloader(self) -> DataLoader:
        if self._provide is not None:
            provide, self._provide = self._provide, None
            provide()
        if self.train_examples is None:
            raise ConfigError(
                "JudgmentDataModule's training examples are set by the judgment loop: add "
                "metalight.methods.judgment.loop.JudgmentLoop to trainer.callbacks"
            )
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        # An empty selection ends the run (the loop sets should_stop); RandomSampler refuses zero rows.
        return DataLoader(
            RecordDataset(self.train_examples),
            batch_size=self.batch_size,
            shuffle=bool(self.train_examples),
            generator=generator,
            collate_fn=collate_records,
        )

    def val_dataloader(self):
        self.source.trainer = getattr(self, "trainer", None)
        return self.source.val_dataloader() if self.records("val") else []

    def test_dataloader(self):
        self.source.trainer = getattr(self, "trainer", None)
        return self.source.test_dataloader() if self.records("test") else []

    def describe_name(self) -> str:
        """The source's name (for reports)."""
        describe = getattr(self.source, "describe_name", None)
        name = describe() if describe is not None else type(self.source).__name__
        return f"judgment({name})"
