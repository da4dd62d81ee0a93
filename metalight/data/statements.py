"""Labelled statements for activation probes (LLM Neurofeedback, arXiv 2505.13763).

Each record is one chat as upstream's ``data/load.py::_format_chat_prompt`` builds it: system "You are a
helpful assistant.", a user prompt ("Say something." for most sets), and the statement as the assistant's
response, with a binary dataset label. ``StatementDataModule`` is the sibling of the QA base: the same
reading, file:line validation, seeded group split and ``max_samples`` caps, plus upstream's class balancing
(keep as many rows of each label, interleave 0, 1, 0, 1, ...) and its ``n_sample`` cap before the split.

``selection: upstream`` picks exactly upstream's items: its random calls after ``seed_everything(42)``
(``random.shuffle``, or for the true/false csvs pandas' ``sample(frac=1)``, i.e. numpy's
``RandomState(42).permutation``) in its order, then its split: the first 60% train, the rest held out (here
divided in order into val, then test, so val + test is upstream's test set in its order).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from metalight.data.datamodule import QADataModule
from metalight.data.readers import Row
from metalight.errors import ConfigError, DataError

SAY_SOMETHING = "Say something."
"""Upstream's user prompt for commonsense, true_false and emotion (``data/load.py``)."""
RESPOND_TO_USER = "Respond to the user."
"""Upstream's user prompt for the sycophancy-agreement sentences."""
UPSTREAM_SEED = 42
"""Upstream's ``load_dataset`` calls ``seed_everything(42)`` before every data set's shuffle."""
UPSTREAM_TRAIN_RATIO = 0.6
"""Upstream's ``load_dataset`` passes ``train_ratio=0.6`` for every data set."""
Selection = Literal["metalight", "upstream"]


@dataclass(frozen=True)
class StatementRecord:
    """One labelled chat: ``user_prompt`` -> ``response`` (the statement), ``label`` in {0, 1}.

    ``meta["group"]`` keeps paired statements (a true fact and its false twin) in one split.
    """

    id: str
    user_prompt: str
    response: str
    label: int
    meta: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> StatementRecord:
        """Raise ``DataError`` naming ``where`` (file:line) for an empty text or a label other than 0/1."""
        for name in ("user_prompt", "response"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise DataError(
                    f"{where}: empty or non-text {name}; fix the row or set strict: false to skip it"
                )
        if isinstance(self.label, bool) or self.label not in (0, 1):
            raise DataError(f"{where}: label must be 0 or 1, got {self.label!r}")
        return self


def parse_label(value: Any, where: str, column: str = "label") -> int:
    """A 0/1 label from a native cell: int, float 0.0/1.0, or the strings "0"/"1" (csv); else ``DataError``
    naming ``where`` and ``column``."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value in (0.0, 1.0):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    raise DataError(f"{where}: column {column!r} must be 0 or 1, got {value!r}")


def interleave_balanced(records: list[StatementRecord]) -> list[StatementRecord]:
    """Upstream's balancing: the first ``min(n0, n1)`` rows of each label, interleaved 0, 1, 0, 1, ..."""
    zeros = [r for r in records if r.label == 0]
    ones = [r for r in records if r.label == 1]
    return [r for pair in zip(zeros, ones) for r in pair]


class StatementDataModule(QADataModule):
    """Base DataModule for labelled statements (see module docstring); subclasses map one native row.

    Args:
        user_prompt: replace every record's user prompt (default: the dataset's, as upstream).
        shuffle_before: shuffle the parsed rows with ``seed`` before balancing (upstream shuffles
            true_false and sycophancy, not commonsense).
        balance: keep ``min(n0, n1)`` rows of each label, interleaved (upstream: commonsense, true_false).
        n_sample: keep the first ``n_sample`` rows after shuffling/balancing (upstream: 1500).
        val_fraction: share held out for validation (upstream has none; its 40% test is our val + test).
        test_fraction: share held out for test.
        stratify: keep label proportions in every split (default: yes).
        eval_split: ``held_out`` by default, also for a single file under ``validate`` / ``test``: a probe's
            axes are fitted on the train split, so evaluation needs the split, not the whole file.
        selection: ``metalight`` (shuffle with ``seed``, seeded split by ``val_fraction`` / ``test_fraction``,
            label-stratified, pairs kept together) or ``upstream`` (upstream's items and split, see the module
            docstring; ``seed``, ``stratify`` and the groups are then not used).
        (other args: see ``QADataModule``)
    """

    default_shuffle = False
    default_balance = False
    upstream_name: str | None = None
    """The ``load_dataset`` key of this set upstream (``None``: upstream has no such set)."""

    def __init__(
        self,
        *args,
        user_prompt: str | None = None,
        shuffle_before: bool | None = None,
        balance: bool | None = None,
        n_sample: int | None = None,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        stratify: bool | str = True,
        eval_split: Literal["auto", "whole", "held_out"] = "held_out",
        selection: Selection = "metalight",
        **kwargs,
    ):
        super().__init__(
            *args,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            stratify=stratify,
            eval_split=eval_split,
            **kwargs,
        )
        self.user_prompt = user_prompt
        self.shuffle_before = self.default_shuffle if shuffle_before is None else shuffle_before
        self.balance = self.default_balance if balance is None else balance
        self.n_sample = n_sample
        self.rows_before_cap = 0
        self.selection = selection
        if selection == "upstream" and self.upstream_name is None:
            raise ConfigError(
                f"{type(self).__name__}: selection: upstream reproduces upstream neurofeedback's "
                f"data/load.py, which has no such data set; use selection: metalight"
            )

    def parse_rows(self, rows: Iterable[Row]) -> list[StatementRecord]:
        """Parse and validate, then shuffle / balance / cap as upstream does before its split."""
        records = super().parse_rows(rows)
        if self.user_prompt is not None:
            records = [StatementRecord(r.id, self.user_prompt, r.response, r.label, r.meta) for r in records]
        if self.shuffle_before:
            if self.selection == "upstream":
                records = self.upstream_shuffle(records)
            else:
                random.Random(self.seed).shuffle(records)
        if self.balance:
            records = interleave_balanced(records)
        self.rows_before_cap = len(records)
        return records[: self.n_sample] if self.n_sample is not None else records

    def upstream_shuffle(self, records: Sequence[StatementRecord]) -> list[StatementRecord]:
        """Upstream's shuffle: ``random.seed(42)`` then ``random.shuffle`` (sycophancy, emotion)."""
        out = list(records)
        random.Random(UPSTREAM_SEED).shuffle(out)
        return out

    def upstream_split_index(self, n: int) -> int:
        """Upstream's split index of ``n`` selected rows: ``int(base * 0.6)`` with base = ``n_sample`` (else
        the rows), at most ``n`` (``load_true_false``, ``load_commonsense``)."""
        return min(int((self.n_sample or n) * UPSTREAM_TRAIN_RATIO), n)

    def upstream_train_count(self, n: int) -> int:
        """Rows upstream trains on: it passes ``split / n`` as a ratio to ``_split_examples``, which takes
        ``int(n * ratio)`` — one fewer than ``split`` when the float product rounds down (e.g. 23 rows)."""
        return int(n * (self.upstream_split_index(n) / n)) if n else 0

    def partition(self, records: list[StatementRecord]) -> dict[str, list[StatementRecord]]:
        """``metalight``: the seeded split; ``upstream``: the first rows train, the rest val then test, in
        order."""
        if self.selection != "upstream":
            return super().partition(records)
        train = self.upstream_train_count(len(records))
        held = records[train:]
        shares = self.val_fraction + self.test_fraction
        n_val = round(len(held) * self.val_fraction / shares) if shares else 0
        return {"train": records[:train], "val": held[:n_val], "test": held[n_val:]}

    def describe_name(self) -> str:
        """The QA base's name, plus ``[selection: upstream]`` when upstream's items are used (reports record
        it)."""
        name = super().describe_name()
        return f"{name} [selection: upstream]" if self.selection == "upstream" else name

    def statement(
        self,
        row: dict[str, Any],
        where: str,
        response_key: str,
        label_key: str,
        index: str,
        user_prompt: str,
        **meta: Any,
    ) -> StatementRecord:
        """A validated record from a flat native row (``response_key`` text, ``label_key`` 0/1)."""
        if response_key not in row or label_key not in row:
            raise DataError(
                f"{where}: a row needs the columns {response_key!r} and {label_key!r} (got {sorted(row)})"
            )
        return StatementRecord(
            id=index,
            user_prompt=user_prompt,
            response=row[response_key],
            label=parse_label(row[label_key], where, label_key),
            meta={"source": self.source_name, **meta},
        ).validate(where)

    source_name = "statements"


class TxtStatementDataModule(StatementDataModule):
    """A statement set read from one of upstream's txt files (``path:``), shuffled, the first ``n_sample``
    kept.

    Args:
        n_sample: statements kept after shuffling (upstream: 1500).
        (other args: see ``StatementDataModule``)
    """

    default_shuffle = True
    file_name = "txt file"
    """Upstream's file, named in the error when ``path:`` is not one file."""

    def __init__(self, *args, n_sample: int | None = 1500, **kwargs):
        super().__init__(*args, n_sample=n_sample, **kwargs)
        if not isinstance(self.path, str) or self.hub_name:
            raise DataError(f"{type(self).__name__} reads upstream's {self.file_name}: set `path:`")
