"""Prompt-completion training data (TRL's convention), e.g. targets written by another method.

Rows (JSONL / JSON / parquet / csv; see ``metalight.data.examples``)::

    {"prompt": "Do you know the answer...? Question: ...", "completion": "Yes"}
    {"prompt": [{"role": "user", "content": "..."}], "completion": "...", "system": "...", "id": "q1"}

The train split is served as batches of ``SFTExample`` for ``SFTModule`` (``targets.builder: given``).
Validation / test: held-out examples of the same file (``val/loss``, ``val/token_accuracy``), or, with
``eval_source``, the QA records of another DataModule, measured with the dual-prompt metrics.
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader

from metalight.data.datamodule import QADataModule
from metalight.data.examples import SFTExample, example_from_row


class PromptCompletionDataModule(QADataModule):
    """Prompt-completion examples from a local file (or per-split files, or a hub dataset).

    Args:
        eval_source: a QA DataModule whose val / test questions measure the model (dual-prompt metrics)
            instead of held-out examples of this file.
        val_fraction: share of examples held out for ``val/loss`` (default none: all examples train).
        test_fraction: share held out for test.
        (other args: see ``QADataModule``)
    """

    def __init__(
        self,
        *args,
        eval_source: QADataModule | None = None,
        val_fraction: float = 0.0,
        test_fraction: float = 0.0,
        **kwargs,
    ):
        super().__init__(*args, val_fraction=val_fraction, test_fraction=test_fraction, **kwargs)
        self.eval_source = eval_source

    def parse_row(self, row: dict[str, Any], where: str) -> SFTExample:
        return example_from_row(row, where)

    def _eval_loader(self, split: str) -> DataLoader | list:
        if self.eval_source is not None:
            self.eval_source.trainer = getattr(self, "trainer", None)
            return self.eval_source._eval_loader(split)
        if not self.records(split):
            return []  # nothing held out: Lightning skips this loop
        return super()._eval_loader(split)

    def describe_name(self) -> str:
        name = super().describe_name()
        return f"{name} / eval {self.eval_source.describe_name()}" if self.eval_source is not None else name
