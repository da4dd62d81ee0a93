"""Natural Questions Open (Lee et al. 2019; Kwiatkowski et al. 2019; CC BY-SA 3.0), closed-book.

Native schema, the same on the hub (``google-research-datasets/nq_open``: train 87,925 / validation 3,610)
and in the official ``NQ-open.{train,dev}.jsonl`` files: one row per question::

    {"question": str, "answer": [str]}

Rows carry no id: a record's id is ``<split>-<row index>`` (ESMA uses the bare row index, which repeats
across splits). No rows ship with metalight: set ``path:`` or ``hub_name:``.
"""

from __future__ import annotations

from typing import Any

from metalight.data.datamodule import QADataModule
from metalight.data.fields import need_list, need_str, unique_texts
from metalight.data.readers import ROW_KEY, numbered
from metalight.data.records import QARecord

SCHEMA = "question: str, answer: [str]"


class NQOpenDataModule(QADataModule):
    """NQ-Open questions with their answer lists (ESMA evaluates the validation split).

    Args: see ``QADataModule``; the hub has train and validation splits (``val`` <- validation).
    """

    hub_splits_default = {"train": "train", "val": "validation", "test": ""}

    def _source(self):
        return numbered(super()._source())

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord:
        question = need_str(row, "question", where, SCHEMA)
        answers = need_list(row, "answer", where, SCHEMA)
        return QARecord(
            id=row[ROW_KEY], question=question, answers=unique_texts(answers), meta={"source": "nq_open"}
        ).validate(where)
