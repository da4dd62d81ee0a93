"""Records: the unit every dataset maps its native schema to, and the batch the modules receive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from metalight.errors import DataError


@dataclass(frozen=True)
class QARecord:
    """A question with its gold answer aliases; ``context`` holds passages for open-book datasets."""

    id: str
    question: str
    answers: list[str]
    context: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str, require_answers: bool = True) -> QARecord:
        """Raise ``DataError`` naming ``where`` (file:line) if a field is missing, mistyped or empty.

        ``require_answers=False`` admits an empty answer list: a question with no correct answer by design
        (e.g. about a fabricated entity), which every grader then scores as wrong.
        """
        if not isinstance(self.question, str) or not self.question.strip():
            raise DataError(
                f"{where}: empty or non-text question; fix the row or set strict: false to skip it"
            )
        if not isinstance(self.answers, list) or not all(isinstance(a, str) for a in self.answers):
            raise DataError(f"{where}: answers must be a list of strings, got {type(self.answers).__name__}")
        if require_answers and not [a for a in self.answers if a.strip()]:
            raise DataError(
                f"{where}: empty answer list for question {self.question[:60]!r}; every question "
                f"needs at least one non-empty alias (or set strict: false to skip such rows)"
            )
        return self


class RecordBatch:
    """A batch of records; ``padding[i]`` marks a row a distributed sampler repeated to even out shards.

    A plain class, not a dataclass: Lightning's precision plugins (FSDP, DeepSpeed) cast inputs with
    ``apply_to_collection``, which walks into dataclasses and cannot rebuild frozen records; text needs no
    cast.
    """

    __slots__ = ("padding", "records")

    def __init__(self, records: list[Any], padding: list[bool]):
        self.records = records
        self.padding = padding

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecordBatch) and (self.records, self.padding) == (
            other.records,
            other.padding,
        )

    def __repr__(self) -> str:
        return f"RecordBatch(records={self.records!r}, padding={self.padding!r})"

    def __len__(self) -> int:
        return len(self.records)

    @property
    def real_records(self) -> list[Any]:
        """The records that are not padding duplicates."""
        return [r for r, pad in zip(self.records, self.padding) if not pad]


def collate_records(items: list[Any]) -> RecordBatch:
    """Collate dataset items (a record, or ``(record, is_padding)``) into a :class:`RecordBatch`."""
    records, padding = [], []
    for item in items:
        record, pad = item if isinstance(item, tuple) else (item, False)
        records.append(record)
        padding.append(pad)
    return RecordBatch(records, padding)
