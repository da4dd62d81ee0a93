"""FreebaseQA (Jiang et al. 2019; CC-BY-4.0 per its repository), closed-book trivia questions with
Freebase answers.

Native schema of the official files ``FreebaseQA-{train,dev,eval}.json`` (github.com/kelvin-jiang/FreebaseQA;
20,358 / 3,994 / 3,996 questions)::

    {"Dataset": "FreebaseQA-eval", "Version": "1.0",
     "Questions": [{"Question-ID": "FreebaseQA-eval-0", "RawQuestion": str, "ProcessedQuestion": str,
                    "Parses": [{"Parse-Id": str, "TopicEntityName": str, "InferentialChain": str, ...,
                                "Answers": [{"AnswersMid": str, "AnswersName": [str]}]}]}]}

The gold aliases are the union of ``Parses[*].Answers[*].AnswersName`` in order without repeats, the
question is ``RawQuestion`` (as ESMA, which evaluates FreebaseQA-eval only). Parses and answers given
column-wise (a dict of lists, as ``datasets`` returns sequences of structs) are read too. No rows ship with
metalight: set ``path:`` (e.g. ``{test: FreebaseQA-eval.json}``).
"""

from __future__ import annotations

from typing import Any

from metalight.data.datamodule import QADataModule
from metalight.data.fields import as_records, need, need_list, need_str, unique_texts
from metalight.data.records import QARecord

SCHEMA = "Question-ID: str, RawQuestion: str, Parses: [{Answers: [{AnswersName: [str]}]}]"


class FreebaseQADataModule(QADataModule):
    """FreebaseQA questions with the answer names of all their parses.

    Args: see ``QADataModule``; there is no default hub dataset (``hub_name`` may name one in this schema).
    """

    hub_splits_default = {"train": "train", "val": "validation", "test": "test"}

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord:
        qid = need(row, "Question-ID", where, SCHEMA)
        question = need_str(row, "RawQuestion", where, SCHEMA)
        names: list[str] = []
        for parse in as_records(need(row, "Parses", where, SCHEMA), where, "Parses", SCHEMA):
            answers = as_records(need(parse, "Answers", where, SCHEMA), where, "Parses[].Answers", SCHEMA)
            for answer in answers:
                names += need_list(answer, "AnswersName", where, SCHEMA)
        return QARecord(
            id=str(qid), question=question, answers=unique_texts(names), meta={"source": "freebase_qa"}
        ).validate(where)
