"""FictionalQA (Kirchenbauer et al. 2025; MIT): questions about machine-written fictional events, so a model
can only know the answers after training on the documents (or question-answer pairs) about them.

Native schema of the hub dataset ``tomg-group-umd/fictionalqa``, config ``fict_qa`` (one ``train`` split of
7,500 rows)::

    {"event_id": str, "fiction_id": str, "question_id": str, "question_num": str, "fict": str,
     "question": str, "span_answer": str, "natural_answer": str,
     "duplicate_relationship": str | null, "duplicate_root": str | null}

As ESMA: rows with a ``duplicate_relationship`` are left out (1,797 remain), the gold answer is
``natural_answer`` (``span_answer`` is kept in meta), and the split is by event -- the sorted unique
``event_id`` s shuffled with ``random.Random(event_seed)`` (42), the first half ``train`` and the rest
``val`` (916 / 881 questions); ``test`` is empty. ``split: fractions`` instead splits the events by
``val_fraction`` / ``test_fraction``. No rows ship with metalight: set ``path:`` (an export of the config) or
``hub_name: tomg-group-umd/fictionalqa`` with ``hub_config: fict_qa``.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from metalight.data.datamodule import QADataModule
from metalight.data.fields import need, need_str
from metalight.data.records import QARecord

SCHEMA = (
    "event_id: str, question_id: str, question: str, natural_answer: str, duplicate_relationship: str | null"
)


class FictionalQADataModule(QADataModule):
    """FictionalQA questions, split by fictional event.

    Args:
        split: ``esma`` (half of the events for train, half for val, by ``event_seed``) or ``fractions``
            (events split by ``val_fraction`` / ``test_fraction`` with ``seed``).
        event_seed: seed of ESMA's event shuffle (ESMA: 42).
        (other args: see ``QADataModule``)
    """

    hub_splits_default = "train"

    def __init__(self, *args, split: Literal["esma", "fractions"] = "esma", event_seed: int = 42, **kwargs):
        super().__init__(*args, **kwargs)
        self.split, self.event_seed = split, event_seed

    def group_of(self, record: QARecord) -> Any:
        return record.meta["event_id"]

    def partition(self, records: list[QARecord]) -> dict[str, list[QARecord]]:
        if self.split == "fractions":
            return super().partition(records)
        events = sorted({r.meta["event_id"] for r in records})
        random.Random(self.event_seed).shuffle(events)
        train_events = set(events[: len(events) // 2])
        return {
            "train": [r for r in records if r.meta["event_id"] in train_events],
            "val": [r for r in records if r.meta["event_id"] not in train_events],
            "test": [],
        }

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord | None:
        if row.get("duplicate_relationship") is not None:
            return None
        event = need_str(row, "event_id", where, SCHEMA)
        qid = need(row, "question_id", where, SCHEMA)
        question = need_str(row, "question", where, SCHEMA)
        answer = need_str(row, "natural_answer", where, SCHEMA)
        meta = {
            "source": "fictional_qa",
            "event_id": event,
            "fiction_id": row.get("fiction_id"),
            "span_answer": row.get("span_answer"),
            "fict": row.get("fict"),
        }
        return QARecord(
            id=str(qid), question=question, answers=[answer.strip()] if answer.strip() else [], meta=meta
        ).validate(where)
