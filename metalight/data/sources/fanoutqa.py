"""FanOutQA (Zhu et al. 2024, data CC-BY-SA-4.0): closed-book QA from the installed ``fanoutqa`` package.

The PyPI package ``fanoutqa==1.1.1`` ships ``fanoutqa/data/fanout-final-dev.json`` (with its CC-BY-SA-4.0
LICENSE beside it): 310 real multi-hop Wikipedia questions, each with a human-written decomposition tree of
~1,800 single-hop questions in all. Native schema (the package's ``DevQuestion``)::

    [{"id": str, "question": str, "answer": dict[str, Primitive] | list[Primitive] | Primitive,
      "categories": [str], "necessary_evidence": [...],
      "decomposition": [{"id", "question", "answer", "depends_on", "evidence", "decomposition": [...]}]}]

Two DataModules read it at run time (nothing is copied into this repository):

* :class:`FanOutQASingleHopDataModule`: the single-hop sub-questions with a string or number answer.
* :class:`FanOutQAMultiHopDataModule`: the 310 top-level questions (see its docstring for the alias rule).

Questions that share a top-level question share entities, so they always land in the same split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metalight.data.aliases import scalar_aliases
from metalight.data.datamodule import QADataModule
from metalight.data.fields import need, need_str
from metalight.data.packaged import packaged_file as installed_file
from metalight.data.readers import Row, read_rows
from metalight.data.records import QARecord
from metalight.errors import DataError
from metalight.grading import GradingMode, is_correct

PACKAGE, VERSION, DEV_FILE = "fanoutqa", "1.1.1", "fanout-final-dev.json"
SCHEMA = "id: str, question: str, answer: primitive | list | dict, decomposition: [sub-questions]"

answer_aliases = scalar_aliases  # the single-hop alias rule (kept under its original name)


def packaged_file(name: str = DEV_FILE) -> Path:
    """Path of a data file shipped in the installed ``fanoutqa`` distribution."""
    return installed_file(PACKAGE, name)


class _FanOutQABase(QADataModule):
    """Reads one FanOutQA JSON file: ``path`` or, by default, the dev file in the installed package."""

    def __init__(self, *args, val_fraction: float = 0.15, test_fraction: float = 0.15, **kwargs):
        super().__init__(*args, val_fraction=val_fraction, test_fraction=test_fraction, **kwargs)
        if isinstance(self.path, dict) or self.hub_name:
            raise DataError(
                f"{type(self).__name__} reads one FanOutQA JSON file: set `path:` to a file "
                "(or leave it unset for the packaged dev set)"
            )

    def _file(self) -> Path:
        return Path(self.path) if self.path else packaged_file()

    def describe_name(self) -> str:
        return f"{type(self).__name__}({self.path or packaged_file()})"


class FanOutQASingleHopDataModule(_FanOutQABase):
    """Closed-book QA over FanOutQA's single-hop sub-questions (string or numeric answers only).

    ``path`` may point at another FanOutQA file with the same schema; by default the dev file in the
    installed package is read. Splits are made by ``val_fraction`` / ``test_fraction`` over the multi-hop
    parent questions. Sub-questions with list / dict / yes-no answers, or answers longer than
    ``max_answer_words``, are left out on purpose (they are not short-answer questions).

    Args:
        max_answer_words: drop questions whose gold answer is longer than this (not short-answer QA).
        (other args: see ``QADataModule``)
    """

    def __init__(self, *args, max_answer_words: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_answer_words = max_answer_words

    def _source(self) -> Iterator[Row]:
        for where, item in read_rows(self._file()):
            yield from self._flatten(item, where, item.get("id"))

    def _flatten(self, node: dict[str, Any], where: str, group: Any) -> Iterator[Row]:
        for index, sub in enumerate(node.get("decomposition") or []):
            sub_where = f"{where} > decomposition[{index}]"
            if not isinstance(sub, dict):
                raise DataError(f"{sub_where}: expected an object with question and answer")
            yield sub_where, {**sub, "group": group}
            yield from self._flatten(sub, sub_where, group)

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord | None:
        qid, question, answer = (
            need(row, "id", where, SCHEMA),
            need_str(row, "question", where, SCHEMA),
            need(row, "answer", where, SCHEMA),
        )
        if isinstance(answer, str) and not answer.strip():
            raise DataError(f"{where}: empty answer for question {question[:60]!r}")
        aliases = answer_aliases(answer)
        if aliases is None or len(aliases[0].split()) > self.max_answer_words:
            return None  # list / dict / yes-no / long answers: not a short-answer question
        return QARecord(
            id=str(qid),
            question=question,
            answers=aliases,
            meta={"source": "fanoutqa", "group": row["group"]},
        ).validate(where)


def answer_parts(answer: Any) -> list[list[str]]:
    """FanOutQA's answer leaves, each as its aliases: the items of a list, the keys and values of a dict,
    a scalar itself (a bool as "yes"/"no") -- the strings FanOutQA's own accuracy looks for."""
    if isinstance(answer, list):
        return [part for item in answer for part in answer_parts(item)]
    if isinstance(answer, dict):
        return [part for kv in answer.items() for item in kv for part in answer_parts(item)]
    if isinstance(answer, bool):
        return [["yes" if answer else "no"]]
    aliases = scalar_aliases(answer)
    return [aliases] if aliases else []


def render_answer(answer: Any) -> str:
    """One line for a structured answer: ``"k: v; k: v"`` for a dict, ``"a, b"`` for a list."""
    if isinstance(answer, dict):
        return "; ".join(f"{k}: {render_answer(v)}" for k, v in answer.items())
    if isinstance(answer, list):
        return ", ".join(render_answer(v) for v in answer)
    if isinstance(answer, bool):
        return "yes" if answer else "no"
    return (scalar_aliases(answer) or [str(answer)])[0]


def part_scores(record: QARecord, text: str, mode: GradingMode = "esma") -> tuple[float, bool]:
    """FanOutQA's accuracy of one answer ``text``: (loose = share of answer parts found in it, strict = all
    found), with metalight's containment grading of each part (FanOutQA itself lemmatises with spaCy)."""
    parts = record.meta.get("answer_parts") or [record.answers]
    found = sum(is_correct(text, aliases, mode) for aliases in parts)
    return found / len(parts), found == len(parts)


class FanOutQAMultiHopDataModule(_FanOutQABase):
    """Closed-book QA over FanOutQA's 310 top-level multi-hop questions (dev file of the installed package).

    Alias rule. A scalar answer (13 strings, 10 numbers) gets the single-hop aliases. A list or dict answer
    (286 questions, e.g. ``{"Pat Burrell": "Right", "Mark Mulder": "Left", ...}``) is correct only when every
    part is given, which an any-alias list cannot express, so such a record carries:

    * ``answers``: one alias, the whole answer on one line (``"Pat Burrell: Right; Mark Mulder: Left; ..."``)
      -- the target for answer fine-tuning, and under containment grading a strict criterion (the model must
      reproduce the full answer);
    * ``meta["answer_parts"]``: FanOutQA's leaves (list items, dict keys and values), each with its aliases;
      :func:`part_scores` turns them into FanOutQA's loose and strict accuracy for a generated answer.

    The one yes/no question ("Did Sedol Lee win ...?") is left out on purpose, as in the single-hop module:
    containment grading of "no" would match "not" and "know". ``meta`` also keeps ``categories`` and
    ``answer_kind`` (scalar / list / dict).
    """

    def _source(self) -> Iterator[Row]:
        return read_rows(self._file())

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord | None:
        qid, question = need(row, "id", where, SCHEMA), need_str(row, "question", where, SCHEMA)
        answer = need(row, "answer", where, SCHEMA)
        if isinstance(answer, bool):
            return None
        if isinstance(answer, (list, dict)):
            kind, parts = type(answer).__name__, answer_parts(answer)
            answers = [render_answer(answer)] if parts else []
        else:
            kind, answers = "scalar", scalar_aliases(answer) or []
            parts = [answers] if answers else []
        return QARecord(
            id=str(qid),
            question=question,
            answers=answers,
            meta={
                "source": "fanoutqa",
                "group": str(qid),
                "answer_kind": kind,
                "answer_parts": parts,
                "categories": list(row.get("categories") or []),
            },
        ).validate(where)
