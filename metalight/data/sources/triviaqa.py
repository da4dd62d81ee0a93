"""TriviaQA (Joshi et al. 2017), closed-book: the ``rc.nocontext`` schema of the hub dataset
``mandarjoshi/trivia_qa`` or the official ``*.json`` files (``{"Data": [{"Question", "Answer": {...}}]}``).

No TriviaQA rows ship with metalight: point ``path:`` at an official file or export, or ``hub_name:`` at
the hub dataset. The hub test split has hidden answers, so ``test`` is not read from the hub by default.
"""

from __future__ import annotations

from typing import Any, Literal

from metalight.data.datamodule import QADataModule
from metalight.data.records import QARecord
from metalight.errors import DataError


class TriviaQADataModule(QADataModule):
    """TriviaQA questions with answer aliases.

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
            question, answer, qid = row["Question"], row.get("Answer"), row.get("QuestionId")
            official = {"aliases": "Aliases", "normalized_aliases": "NormalizedAliases", "value": "Value"}
        else:
            question, answer, qid = row.get("question"), row.get("answer"), row.get("question_id")
            official = {"aliases": "aliases", "normalized_aliases": "normalized_aliases", "value": "value"}
        if not isinstance(answer, dict):
            raise DataError(f"{where}: missing `answer` object (TriviaQA schema: answer.value, answer.aliases)")
        aliases = answer.get(official[self.answers_field])
        if not isinstance(aliases, list):
            raise DataError(f"{where}: answer.{official[self.answers_field]} must be a list of strings")
        value = answer.get(official["value"])
        answers = list(dict.fromkeys(([value] if isinstance(value, str) and value.strip() else []) +
                                     [a for a in aliases if isinstance(a, str) and a.strip()]))
        if not answers and aliases and not all(isinstance(a, str) for a in aliases):
            raise DataError(f"{where}: answer aliases must be strings")
        if qid is None:
            raise DataError(f"{where}: missing question_id")
        return QARecord(id=str(qid), question=question, answers=answers,
                        meta={"source": "triviaqa"}).validate(where)
