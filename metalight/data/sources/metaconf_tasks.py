"""MetaConf's two stage-2 task families (``Lixingming18/Metaconf`` ``datasets/stage2/``), on their own
schemas.

Maths (``math.json``, 1000 rows upstream), a JSON list (or JSONL) of::

    {"prompt": [{"role": "user", "content": str, "task_type": "math"}],
     "answer": "Step 1: ... \\boxed{72}"}

The question is the user message; the gold answer is the last ``\\boxed{}`` of ``answer`` (graded by
:func:`metalight.math_answers.math_equivalent`), the worked solution is kept as ``meta["solution"]``.
Upstream shuffles with seed 42 and takes ``sample_size`` rows: ``seed: 42`` with ``max_samples``.

Long-form QA (``long_form_qa.json``, 808 items upstream), one JSON object::

    {"messages": [[{"role": "user", "content": "In a paragraph, can you tell me about X?",
                    "task_type": "long_fact", "title": "X"},
                   {"role": "assistant", "content": ""}], ...]}

A question has no short gold answer (its reply is graded for factuality by
:class:`metalight.methods.metaconf.task_graders.FactScoreGrader`); ``title`` is kept as ``meta["title"]``.
Every record carries ``meta["task_type"]`` (``math`` or ``long_fact``). A malformed row raises ``DataError``
naming the file and row.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metalight.data.datamodule import QADataModule
from metalight.data.fields import FIX, need_list, need_str
from metalight.data.readers import ROW_KEY, Row, numbered, read_json
from metalight.data.records import QARecord
from metalight.errors import DataError
from metalight.math_answers import last_boxed

MATH_SCHEMA = "prompt: [{role: user, content: str, task_type: math}], answer: '<steps> \\boxed{<answer>}'"
LONG_FORM_SCHEMA = (
    "messages: [[{role: user, content: str, task_type: long_fact, title: str}, {role: assistant}]]"
)


def _user_message(messages: list[Any], where: str, field: str, schema: str) -> dict[str, Any]:
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users:
        raise DataError(f"{where}: `{field}` has no message with role user (schema: {schema}); {FIX}")
    return users[0]


class MetaConfMathDataModule(QADataModule):
    """MetaConf's stage-2 maths problems (``path:`` upstream's ``datasets/stage2/math.json`` or a file in
    its schema); the gold answer is the solution's last ``\\boxed{}``.

    Args: see ``QADataModule`` (``path`` is required).
    """

    def _source(self):
        return numbered(super()._source())

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord:
        messages = need_list(row, "prompt", where, MATH_SCHEMA, of=None)
        question = need_str(
            _user_message(messages, where, "prompt", MATH_SCHEMA), "content", where, MATH_SCHEMA
        )
        solution = need_str(row, "answer", where, MATH_SCHEMA)
        boxed = last_boxed(solution)
        if not boxed:
            raise DataError(
                f"{where}: field `answer` has no non-empty \\boxed{{...}} final answer "
                f"(schema: {MATH_SCHEMA}); {FIX}"
            )
        return QARecord(
            id=f"math-{row[ROW_KEY]}",
            question=question,
            answers=[boxed],
            meta={"source": "metaconf_math", "task_type": "math", "solution": solution},
        ).validate(where)


class MetaConfLongFormDataModule(QADataModule):
    """MetaConf's stage-2 long-form factual questions (``path:`` upstream's
    ``datasets/stage2/long_form_qa.json`` or a file in its schema); records have no gold aliases.

    Args: see ``QADataModule`` (``path`` is required; a per-split mapping of such files also works).
    """

    def _source(self):
        if isinstance(self.path, dict):
            return {split: self._conversations(p) for split, p in self.path.items()}
        if self.path:
            return self._conversations(self.path)
        return super()._source()

    @staticmethod
    def _conversations(path: str) -> Iterator[Row]:
        """``(where, {"conversation": [...], ROW_KEY: i})`` per item of the file's ``messages`` list."""
        file = Path(path).expanduser()
        if not file.is_file():
            raise DataError(f"data file not found: {file}; check `path:` in the data config")
        data = read_json(file)
        items = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise DataError(f"{file}: expected an object with a `messages` list (schema: {LONG_FORM_SCHEMA})")
        for index, item in enumerate(items):
            yield f"{file} (messages[{index}])", {"conversation": item, ROW_KEY: index}

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord:
        conversation = row["conversation"]
        if not isinstance(conversation, list):
            raise DataError(
                f"{where}: a `messages` item must be a list of chat messages, got "
                f"{type(conversation).__name__} (schema: {LONG_FORM_SCHEMA}); {FIX}"
            )
        user = _user_message(conversation, where, "messages", LONG_FORM_SCHEMA)
        question = need_str(user, "content", where, LONG_FORM_SCHEMA)
        title = user.get("title") if isinstance(user.get("title"), str) else None
        return QARecord(
            id=f"long_fact-{row[ROW_KEY]}",
            question=question,
            answers=[],
            meta={"source": "metaconf_long_form", "task_type": "long_fact", "title": title},
        ).validate(where, require_answers=False)
