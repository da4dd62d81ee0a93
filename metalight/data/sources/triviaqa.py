"""TriviaQA (Joshi et al. 2017), closed-book. Reads either native schema:

* the hub dataset ``mandarjoshi/trivia_qa`` (config ``rc.nocontext``; ``rc`` has the same questions plus
  evidence), one row per question::

    {"question": str, "question_id": str, "question_source": str, "entity_pages": {...},
     "search_results": {...}, "answer": {"aliases": [str], "normalized_aliases": [str], "value": str,
     "normalized_value": str, "matched_wiki_entity_name": str, "type": str, ...}}

* the official ``*.json`` files of the TriviaQA release (``{"Data": [{"Question", "QuestionId",
  "Answer": {"Aliases", "NormalizedAliases", "Value", ...}}], "Domain", "Version"}``).

No TriviaQA rows ship with metalight: point ``path:`` at an official file or an export, or ``hub_name:`` at
the hub dataset. The hub test split has hidden answers, so ``test`` is not read from the hub by default.
"""

from __future__ import annotations

from typing import Any, Literal

from metalight.data.datamodule import QADataModule
from metalight.data.fields import need, need_dict, need_list, need_str, unique_texts
from metalight.data.records import QARecord

HUB_SCHEMA = (
    "question: str, question_id: str, answer: {value: str, aliases: [str], normalized_aliases: [str]}"
)
OFFICIAL_SCHEMA = (
    "Question: str, QuestionId: str, Answer: {Value: str, Aliases: [str], NormalizedAliases: [str]}"
)
_OFFICIAL_KEYS = {
    "question": "Question",
    "question_id": "QuestionId",
    "answer": "Answer",
    "value": "Value",
    "aliases": "Aliases",
    "normalized_aliases": "NormalizedAliases",
}


class TriviaQADataModule(QADataModule):
    """TriviaQA questions with answer aliases (the value first, then the aliases, without repeats).

    Args:
        answers_field: ``aliases`` (ESMA: the raw aliases) or ``normalized_aliases`` (Know-thyself).
        (other args: see ``QADataModule``)
    """

    hub_splits_default = {"train": "train", "val": "validation", "test": ""}

    def __init__(self, *args, answers_field: Literal["aliases", "normalized_aliases"] = "aliases", **kwargs):
        super().__init__(*args, **kwargs)
        self.answers_field = answers_field

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord:
        if "Question" in row:  # the official JSON files use capitalised keys
            keys, schema = _OFFICIAL_KEYS, OFFICIAL_SCHEMA
        else:
            keys, schema = {k: k for k in _OFFICIAL_KEYS}, HUB_SCHEMA
        question = need_str(row, keys["question"], where, schema)
        qid = need(row, keys["question_id"], where, schema)
        answer = need_dict(row, keys["answer"], where, schema)
        aliases = need_list(answer, keys[self.answers_field], where, schema)
        value = answer.get(keys["value"])
        if self.answers_field == "normalized_aliases":
            value = answer.get("NormalizedValue" if keys is _OFFICIAL_KEYS else "normalized_value")
        return QARecord(
            id=str(qid),
            question=question,
            answers=unique_texts([value, *aliases]),
            meta={"source": "triviaqa", "value": value if isinstance(value, str) else None},
        ).validate(where)
