"""``QADataModule``: the base every dataset builds on.

A subclass maps one native row to a record (:meth:`QADataModule.parse_row`); the base reads a local file
(jsonl / json / parquet / csv, optionally gzipped), one file per split, or a hub dataset, validates every row
(a malformed row raises an error naming file and line; ``strict: false`` skips and reports such rows
instead), splits deterministically by seed (optionally stratified by label), caps each split at
``max_samples``, and serves ``RecordBatch`` es.

A single file given as ``path`` to ``validate`` / ``test`` (``eval_split: auto``) is evaluated whole rather
than split; :meth:`QADataModule.split_summary` states which rows a split holds and how many rows were read,
skipped or capped, for the console and ``report.json``.
"""

from __future__ import annotations

import gc
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from metalight.data.readers import InvalidRow, Row, hub_rows, read_rows
from metalight.data.records import QARecord, collate_records
from metalight.data.splits import cap_records, labeller, split_records
from metalight.errors import ConfigError, DataError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class RecordDataset(Dataset):
    """Map-style dataset over records; also accepts ``(index, is_padding)`` keys from the eval sampler."""

    def __init__(self, records: Sequence[Any]):
        self.records = list(records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            index, is_padding = key
            return self.records[index], is_padding
        return self.records[key]


class EvalDistributedSampler(DistributedSampler):
    """Unshuffled ``DistributedSampler`` that marks the rows it repeats to give every rank equal work.

    Yields ``(index, is_padding)``; metrics mask the padding rows, so a distributed evaluation counts each
    record exactly once (and ranks still run the same number of batches, which sharded generation needs).
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)

    def __iter__(self):
        n = len(self.dataset)
        repeats = math.ceil(self.total_size / max(n, 1))
        padded = (list(range(n)) * repeats)[: self.total_size]
        for position in range(self.rank, self.total_size, self.num_replicas):
            yield padded[position], position >= n


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: building ~10^5 records (no cycles) otherwise triggers repeated
    full collections that cost about a quarter of the load time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class QADataModule(LightningDataModule, ABC):
    """Base DataModule for question-answer datasets (see module docstring).

    Args:
        path: a local file (split by ``val_fraction`` / ``test_fraction``) or a mapping split -> file
            (splits: train, val, test).
        hub_name: a ``datasets`` hub dataset (needs network); ``hub_config`` its configuration.
        hub_splits: our split -> the hub's split name (subclasses give the dataset's defaults), or one hub
            split name, which is then split by ``val_fraction`` / ``test_fraction`` like a single file.
        val_fraction: share of questions (or question groups) held out for validation, single-file sources.
        test_fraction: share held out for test, single-file sources.
        max_samples: cap per split (an int for all, or a mapping split -> int).
        seed: seed of the split and of the shuffles.
        batch_size: questions per training batch per device.
        eval_batch_size: questions per validation/test batch per device (default: ``batch_size``).
        strict: raise on a malformed row (default); ``False`` skips it and logs how many and which lines.
        num_workers: DataLoader workers.
        stratify: keep label proportions in the split and in ``max_samples`` caps: ``true`` uses each
            record's label (``.label`` or ``meta["label"]``), a string names a meta key (e.g. ``category``).
        eval_split: which rows of a single source (one file, or one hub split) ``validate`` / ``test`` see:
            ``auto`` (default): every row of a ``path`` file under ``validate`` / ``test``, else (during
            ``fit``, packaged or hub data) the held-out slice;
            ``whole``: always every row; ``held_out``: always the ``val_fraction`` / ``test_fraction`` slice
            (e.g. to measure a checkpoint on the rows its training run held out).
        max_samples_from: which rows a cap keeps: ``shuffle`` (default: a seeded draw, label-stratified with
            ``stratify``, kept in file order) or ``start`` (the split's first rows, as Know-thyself's loaders
            take the first N rows of a split).
    """

    hub_splits_default: dict[str, str] | str = {"train": "train", "val": "validation", "test": "test"}

    def __init__(
        self,
        path: str | dict[str, str] | None = None,
        hub_name: str | None = None,
        hub_config: str | None = None,
        hub_splits: dict[str, str] | str | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_samples: int | dict[str, int] | None = None,
        seed: int = 0,
        batch_size: int = 32,
        eval_batch_size: int | None = None,
        strict: bool = True,
        num_workers: int = 0,
        stratify: bool | str = False,
        eval_split: Literal["auto", "whole", "held_out"] = "auto",
        max_samples_from: Literal["shuffle", "start"] = "shuffle",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.path, self.hub_name, self.hub_config = path, hub_name, hub_config
        if isinstance(hub_splits, str) or (hub_splits is None and isinstance(self.hub_splits_default, str)):
            self.hub_splits: dict[str, str] | str = hub_splits or self.hub_splits_default
        else:
            self.hub_splits = {**self.hub_splits_default, **(hub_splits or {})}
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.max_samples, self.seed, self.strict, self.num_workers = max_samples, seed, strict, num_workers
        self.max_samples_from = max_samples_from
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.stratify, self.eval_split = stratify, eval_split
        self.splits: dict[str, list[Any]] | None = None
        self.skipped: list[str] = []
        self.dropped = 0
        self.rows_read = 0
        self.split_rule = ""
        self.uncapped: dict[str, int] = {}
        self._stage: str | None = None
        self._check_args()

    def _check_args(self) -> None:
        problems = []
        if (
            not 0 <= self.val_fraction < 1
            or not 0 <= self.test_fraction < 1
            or self.val_fraction + self.test_fraction >= 1
        ):
            problems.append("val_fraction and test_fraction must be in [0, 1) with a sum below 1")
        if self.batch_size < 1 or self.eval_batch_size < 1:
            problems.append("batch_size and eval_batch_size must be >= 1")
        for name, value in (("path", self.path), ("hub_splits", self.hub_splits)):
            if isinstance(value, dict) and set(value) - set(SPLITS):
                unknown = sorted(set(value) - set(SPLITS))
                problems.append(f"{name}: unknown split names {unknown}; use {SPLITS}")
        caps = self.max_samples.items() if isinstance(self.max_samples, dict) else [("", self.max_samples)]
        for split, cap in caps:
            if cap is not None and cap < 1:
                key = f"max_samples.{split}" if split else "max_samples"
                problems.append(
                    f"{key}: {cap} must be >= 1 (rows per split); leave it unset (null) to keep every row"
                )
        if problems:
            raise ConfigError(f"{type(self).__name__}: " + "; ".join(problems))

    # ---- to override --------------------------------------------------------------------------------------
    @abstractmethod
    def parse_row(self, row: dict[str, Any], where: str) -> QARecord | None:
        """Map one native row to a record (``None`` drops it on purpose); raise ``DataError`` naming ``where``
        if it is malformed."""

    def group_of(self, record: Any) -> Any:
        """Records with the same group are never split across train/val/test (default: each its own)."""
        return record.meta.get("group", record.id)

    def default_source(self) -> dict[str, Iterable[Row]] | Iterable[Row] | None:
        """Rows to use when neither ``path`` nor ``hub_name`` is set (e.g. data shipped in a package)."""
        return None

    # ---- reading ------------------------------------------------------------------------------------------
    def _source(self) -> dict[str, Iterable[Row]] | Iterable[Row]:
        if isinstance(self.path, dict):
            return {split: read_rows(p, skip_invalid=not self.strict) for split, p in self.path.items()}
        if self.path:
            return read_rows(self.path, skip_invalid=not self.strict)
        if self.hub_name:
            if isinstance(self.hub_splits, str):
                return hub_rows(self.hub_name, self.hub_config, self.hub_splits)
            return {
                split: hub_rows(self.hub_name, self.hub_config, name)
                for split, name in self.hub_splits.items()
                if name
            }
        source = self.default_source()
        if source is None:
            raise ConfigError(
                f"{type(self).__name__}: set `path:` (a local file) or `hub_name:` (a hub dataset)"
            )
        return source

    def parse_rows(self, rows: Iterable[Row]) -> list[Any]:
        """Parse and validate rows; skip malformed ones when not strict (and remember where)."""
        records = []
        for where, row in rows:
            self.rows_read += 1
            if isinstance(row, InvalidRow):
                if self.strict:
                    raise DataError(row.message)
                self.skipped.append(row.message)
                continue
            try:
                record = self.parse_row(row, where)
            except DataError as err:
                if self.strict:
                    raise
                self.skipped.append(str(err))
                continue
            except (KeyError, TypeError, AttributeError, ValueError) as err:
                message = (
                    f"{where}: malformed row ({type(err).__name__}: {err}); expected the native schema "
                    f"of {type(self).__name__}"
                )
                if self.strict:
                    raise DataError(message) from err
                self.skipped.append(message)
                continue
            if record is not None:
                records.append(record)
            else:
                self.dropped += 1
        return records

    def partition(self, records: list[Any]) -> dict[str, list[Any]]:
        """Split the records of a single source into train/val/test (seeded, grouped, maybe stratified)."""
        return split_records(
            records, self.val_fraction, self.test_fraction, self.seed, self.group_of, self._label_fn(records)
        )

    def _label_fn(self, records: Sequence[Any]):
        label_fn = labeller(self.stratify)
        if label_fn is not None and records and all(label_fn(r) is None for r in records):
            what = (
                "a label (.label or meta['label'])" if self.stratify is True else f"meta[{self.stratify!r}]"
            )
            raise ConfigError(
                f"{type(self).__name__}: stratify: {self.stratify} but no record has {what}; "
                f"set stratify to a meta key these records carry, or false"
            )
        return label_fn

    def load_splits(self) -> dict[str, list[Any]]:
        """Read, validate, split and cap: ``{"train": [...], "val": [...], "test": [...]}``."""
        with _gc_paused():
            return self._load_splits()

    def _load_splits(self) -> dict[str, list[Any]]:
        self.skipped, self.dropped, self.rows_read = [], 0, 0
        source = self._source()
        if isinstance(source, dict):
            splits = {split: self.parse_rows(rows) for split, rows in source.items()}
            splits = {split: splits.get(split, []) for split in SPLITS}
            self.split_rule = "one file per split"
        elif self._whole_source():
            records = self.parse_rows(source)
            splits = {"train": [], "val": records, "test": list(records)}
            self.split_rule = "whole file: every row (eval_split)"
        else:
            splits = self.partition(self.parse_rows(source))
            self.split_rule = (
                f"held-out slice of one file: val_fraction {self.val_fraction}, test_fraction "
                f"{self.test_fraction} (set data.init_args.eval_split: whole for every row)"
            )
        if self.skipped:
            log.warning(
                "%s: skipped %d malformed rows (strict: false): %s%s",
                type(self).__name__,
                len(self.skipped),
                "; ".join(self.skipped[:20]),
                f"; ... and {len(self.skipped) - 20} more" if len(self.skipped) > 20 else "",
            )
        if self.dropped:
            log.info(
                "%s: left out %d rows on purpose (see the class docstring)", type(self).__name__, self.dropped
            )
        label_fn = self._label_fn([r for records in splits.values() for r in records])
        self.uncapped = {split: len(records) for split, records in splits.items()}
        return {split: self._cap(split, records, label_fn) for split, records in splits.items()}

    def _whole_source(self) -> bool:
        """Whether a single source feeds validation and test whole (see ``eval_split``)."""
        if (
            self.eval_split == "auto"
        ):  # a file the user named; packaged and hub data keep their held-out split
            return isinstance(self.path, str) and self._stage in ("validate", "test")
        return self.eval_split == "whole"

    def split_summary(self, split: str) -> dict[str, Any]:
        """Which rows ``split`` holds and why: the split rule, rows read, skipped as malformed (``strict:
        false``), left out on purpose, in the split before and after ``max_samples`` (and which rows a cap
        keeps, ``max_samples_from``)."""
        self.setup()
        return {
            "split_rule": self.split_rule,
            "rows_read": self.rows_read,
            "skipped_rows": len(self.skipped),
            "dropped_rows": self.dropped,
            "split_rows": self.uncapped.get(split, 0),
            "evaluated_rows": len(self.splits[split]),
            "max_samples_from": self.max_samples_from,
        }

    def _cap(self, split: str, records: list[Any], label_fn=None) -> list[Any]:
        limit = self.max_samples.get(split) if isinstance(self.max_samples, dict) else self.max_samples
        if self.max_samples_from == "start":
            return records if limit is None else records[:limit]
        return cap_records(records, limit, self.seed, split, label_fn)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is None:
            self._stage = stage
            self.splits = self.load_splits()

    def records(self, split: str) -> list[Any]:
        """The records of ``split`` (train, val or test)."""
        self.setup()
        return self.splits[split]

    # ---- loaders ------------------------------------------------------------------------------------------
    def _require(self, split: str) -> list[Any]:
        records = self.records(split)
        if not records:
            skipped = (
                (
                    f" ({self.rows_read} rows read, {len(self.skipped)} skipped as malformed, first: "
                    f"{self.skipped[0]})"
                )
                if self.skipped
                else f" ({self.rows_read} rows read)"
            )
            raise DataError(
                f"{type(self).__name__}: the {split} split is empty{skipped}; check the data source, "
                f"max_samples and the split fractions"
            )
        return records

    def train_dataloader(self) -> DataLoader:
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            RecordDataset(self._require("train")),
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            collate_fn=collate_records,
            num_workers=self.num_workers,
        )

    def _eval_loader(self, split: str) -> DataLoader:
        dataset = RecordDataset(self._require(split))
        sampler = None
        trainer = getattr(self, "trainer", None)
        if trainer is not None and trainer.world_size > 1:
            sampler = EvalDistributedSampler(dataset, trainer.world_size, trainer.global_rank)
        return DataLoader(
            dataset,
            batch_size=self.eval_batch_size,
            shuffle=False,
            sampler=sampler,
            collate_fn=collate_records,
            num_workers=self.num_workers,
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._eval_loader("test")

    def describe_name(self) -> str:
        """Name used in reports: the class name plus the file or hub dataset read."""
        source = self.path or self.hub_name or "packaged data"
        return f"{type(self).__name__}({source})"
