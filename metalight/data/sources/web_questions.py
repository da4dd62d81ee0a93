"""WebQuestions (Berant et al. 2013), closed-book questions answerable from Freebase.

Reads either native schema:

* the hub dataset ``stanfordnlp/web_questions`` (train 3,778 / test 2,032)::

    {"url": "http://www.freebase.com/view/en/jamaica", "question": str, "answers": [str]}

* the official ``webquestions.examples.{train,test}.json`` files (a JSON list)::

    {"url": str, "utterance": str, "targetValue": "(list (description \\"Jamaican English\\") ...)"}

Several questions share one Freebase ``url`` (the topic entity), so ``url`` is no id: a record's id is
``<split>-<row index>`` (ESMA uses the url), ``meta["url"]`` keeps it, and questions about one entity stay
in one split. No rows ship with metalight: set ``path:`` or ``hub_name:``.
"""

from __future__ import annotations

import re
from typing import Any

from metalight.data.datamodule import QADataModule
from metalight.data.fields import FIX, need_list, need_str, unique_texts
from metalight.data.readers import ROW_KEY, numbered
from metalight.data.records import QARecord
from metalight.errors import DataError

HUB_SCHEMA = "url: str, question: str, answers: [str]"
OFFICIAL_SCHEMA = "url: str, utterance: str, targetValue: '(list (description ...) ...)'"
_DESCRIPTION = re.compile(r'\(description\s+(?:"((?:[^"\\]|\\.)*)"|([^()]*?))\)')


def target_values(target: str, where: str) -> list[str]:
    """The answers in an official ``targetValue`` s-expression:
    ``(list (description "A") (description B))``."""
    if not target.strip().startswith("(list"):
        raise DataError(
            f"{where}: field `targetValue` must be a '(list (description ...))' expression, got "
            f"{target[:60]!r}; {FIX}"
        )
    return [
        re.sub(r"\\(.)", r"\1", quoted) if quoted else bare.strip()
        for quoted, bare in _DESCRIPTION.findall(target)
    ]


class WebQuestionsDataModule(QADataModule):
    """WebQuestions questions with their Freebase answer names (ESMA evaluates the test split).

    Args: see ``QADataModule``; the hub has train and test splits.
    """

    hub_splits_default = {"train": "train", "val": "", "test": "test"}

    def _source(self):
        return numbered(super()._source())

    def group_of(self, record: QARecord) -> Any:
        return record.meta["url"] or record.id

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord:
        if "utterance" in row:
            question = need_str(row, "utterance", where, OFFICIAL_SCHEMA)
            answers = target_values(need_str(row, "targetValue", where, OFFICIAL_SCHEMA), where)
        else:
            question = need_str(row, "question", where, HUB_SCHEMA)
            answers = need_list(row, "answers", where, HUB_SCHEMA)
        url = row.get("url") if isinstance(row.get("url"), str) else ""
        return QARecord(
            id=row[ROW_KEY],
            question=question,
            answers=unique_texts(answers),
            meta={"source": "web_questions", "url": url},
        ).validate(where)
