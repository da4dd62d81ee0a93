"""HotpotQA (Yang et al. 2018; CC BY-SA 4.0), distractor setting: multi-hop questions answered open-book
from the passages given in the prompt.

Reads either native schema:

* the hub dataset ``hotpotqa/hotpot_qa``, config ``distractor`` (train 90,447 / validation 7,405)::

    {"id": str, "question": str, "answer": str, "type": "bridge" | "comparison",
     "level": "easy" | "medium" | "hard",
     "supporting_facts": {"title": [str], "sent_id": [int]},
     "context": {"title": [str], "sentences": [[str]]}}

* the official ``hotpot_train_v1.1.json`` / ``hotpot_dev_distractor_v1.json`` (a JSON list)::

    {"_id": str, "question": str, "answer": str, "type": str, "level": str,
     "supporting_facts": [[title, sent_id]], "context": [[title, [sentence, ...]]]}

The passages go into ``QARecord.context`` formatted as Know-thyself does: each passage ``[title]`` on its
own line followed by its sentences joined without separator (HotpotQA's sentences carry their own leading
spaces), passages separated by a blank line; the prompt then reads ``Context:\\n{context}\\n\\n{question
prompt}``. ``context: supporting`` keeps only the gold passages, ``none`` makes it closed-book. The gold
answer is the single ``answer``. No rows ship with metalight: set ``path:`` or ``hub_name:``.
"""

from __future__ import annotations

from typing import Any, Literal

from metalight.data.datamodule import QADataModule
from metalight.data.fields import FIX, need, need_str
from metalight.data.records import QARecord
from metalight.errors import DataError

SCHEMA = (
    "id | _id: str, question: str, answer: str, type: str, level: str, "
    "context: {title: [str], sentences: [[str]]} | [[title, [sentence]]], supporting_facts"
)


def _pairs(value: Any, first: str, second: str, where: str, name: str) -> list[tuple[Any, Any]]:
    """(title, x) pairs from the hub's column form ``{first: [...], second: [...]}`` or the official
    ``[[title, x], ...]`` form."""
    if (
        isinstance(value, dict)
        and isinstance(value.get(first), list)
        and isinstance(value.get(second), list)
        and len(value[first]) == len(value[second])
    ):
        return list(zip(value[first], value[second]))
    if isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        return [tuple(p) for p in value]
    raise DataError(
        f"{where}: field `{name}` must be {{{first}: [...], {second}: [...]}} or [[{first}, "
        f"{second}], ...] (schema: {SCHEMA}); {FIX}"
    )


def format_passages(passages: list[tuple[str, list[str]]]) -> str:
    """Know-thyself's context text: ``[title]\\n<sentences joined>`` per passage, blank line between."""
    return "\n\n".join(f"[{title}]\n{''.join(sentences)}" for title, sentences in passages)


class HotpotQADataModule(QADataModule):
    """HotpotQA (distractor) questions with their passages as open-book context.

    Args:
        context: ``all`` (the 10 passages, gold and distractors, as Know-thyself), ``supporting`` (only the
            passages named in ``supporting_facts``) or ``none`` (closed-book).
        (other args: see ``QADataModule``; the hub has train and validation splits)
    """

    hub_splits_default = {"train": "train", "val": "validation", "test": ""}

    def __init__(self, *args, context: Literal["all", "supporting", "none"] = "all", **kwargs):
        super().__init__(*args, **kwargs)
        self.context = context

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord:
        qid = row.get("id") if row.get("id") is not None else need(row, "_id", where, SCHEMA)
        question = need_str(row, "question", where, SCHEMA)
        answer = need_str(row, "answer", where, SCHEMA)
        passages = _pairs(need(row, "context", where, SCHEMA), "title", "sentences", where, "context")
        if not all(
            isinstance(t, str) and isinstance(s, list) and all(isinstance(x, str) for x in s)
            for t, s in passages
        ):
            raise DataError(
                f"{where}: field `context` must pair each title (str) with a list of sentences "
                f"(schema: {SCHEMA}); {FIX}"
            )
        gold = {
            title
            for title, _ in _pairs(
                row.get("supporting_facts") or [], "title", "sent_id", where, "supporting_facts"
            )
        }
        if self.context == "supporting":
            passages = [(t, s) for t, s in passages if t in gold]
        context = format_passages(passages) if self.context != "none" and passages else None
        return QARecord(
            id=str(qid),
            question=question,
            answers=[answer.strip()] if answer.strip() else [],
            context=context,
            meta={
                "source": "hotpot_qa",
                "type": row.get("type"),
                "level": row.get("level"),
                "supporting_titles": sorted(gold),
            },
        ).validate(where)
