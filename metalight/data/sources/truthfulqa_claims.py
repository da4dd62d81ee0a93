"""TruthfulQA (Lin et al. 2022) as claims: "Question: ... Claim: <an answer>" labelled true or false.

Native schemas, as on the hub card of ``truthful_qa`` (also ``truthfulqa/truthful_qa``):

* ``multiple_choice``: ``question``, ``mc1_targets`` / ``mc2_targets`` =
  ``{"choices": [...], "labels": [...]}``;
* ``generation``: ``type``, ``category``, ``question``, ``best_answer``, ``correct_answers``,
  ``incorrect_answers``, ``source`` (the official ``TruthfulQA.csv`` has the same fields, capitalised, with
  answers separated by ``;``).

Claims about one question form a consistency group. The key is the answer's normalised text — never the
gold label, which upstream's loader used (``'A' if label else 'B'``), leaking labels into the search:

* ``format: mc1`` (default): exactly one choice is correct, so two different answers cannot both be true
  (the GSM8K rule);
* ``format: mc2`` / ``generation``: several answers can be true; only identical answers must agree, so the
  search rests on mutual predictability alone.

No TruthfulQA rows ship with metalight: point ``path`` at an export or ``hub_name`` at the hub dataset.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from metalight.data.claims import ClaimDataModule, ClaimRecord, as_label, require_text
from metalight.errors import DataError
from metalight.grading import normalize_answer

TruthfulQAFormat = Literal["mc1", "mc2", "generation"]


class TruthfulQAClaimsDataModule(ClaimDataModule):
    """TruthfulQA answers as true/false claims grouped by question.

    Args:
        format: which answers become claims: ``mc1`` choices (one correct per question), ``mc2`` choices, or
            the ``generation`` config's correct + incorrect answers.
        max_claims_per_question: keep at most this many claims per question, drawn with the seed (without
            looking at labels); upstream used groups of 4. ``None`` keeps all.
        (other args: see ``QADataModule``)
    """

    template = "claim"
    hub_splits_default = {"train": "validation", "val": "", "test": ""}

    def __init__(
        self, *args, format: TruthfulQAFormat = "mc1", max_claims_per_question: int | None = 4, **kwargs
    ):
        super().__init__(*args, **kwargs)
        self.format, self.max_claims_per_question = format, max_claims_per_question
        if max_claims_per_question is not None and max_claims_per_question < 2:
            raise DataError(
                "max_claims_per_question must be >= 2 (a consistency group needs two claims) or null"
            )

    @property
    def testbed(self) -> str:
        return "truthfulqa-mc1" if self.format == "mc1" else "truthfulqa"

    def parse_row(self, row: dict[str, Any], where: str) -> list[ClaimRecord]:
        question = require_text(row, "question" if "question" in row else "Question", where)
        answers = self._answers(row, where)
        by_text: dict[str, tuple[str, int]] = {}
        for text, label in answers:
            key = normalize_answer(text) or text.strip().lower()  # "A" normalises to ""
            if key in by_text and by_text[key][1] != label:
                raise DataError(f"{where}: answer {text!r} is listed as both correct and incorrect")
            by_text.setdefault(key, (text, label))
        items = list(by_text.items())
        if len(items) < 2:
            raise DataError(f"{where}: a question needs at least two distinct answers, got {len(items)}")
        group = str(row.get("id", question))
        if self.max_claims_per_question and len(items) > self.max_claims_per_question:
            keep = sorted(
                random.Random(f"{self.seed}-{group}").sample(range(len(items)), self.max_claims_per_question)
            )
            items = [items[i] for i in keep]
        return [
            ClaimRecord(
                id=f"{group}#{i}",
                question=question,
                claim=text,
                label=label,
                consistency_id=group,
                consistency_key=key,
                meta={"source": "truthfulqa", "format": self.format},
            ).validate(where)
            for i, (key, (text, label)) in enumerate(items)
        ]

    def _answers(self, row: dict[str, Any], where: str) -> list[tuple[str, int]]:
        if self.format in ("mc1", "mc2"):
            targets = row.get(f"{self.format}_targets")
            if (
                not isinstance(targets, dict)
                or not isinstance(targets.get("choices"), list)
                or not isinstance(targets.get("labels"), list)
            ):
                raise DataError(
                    f"{where}: missing `{self.format}_targets` with `choices` and `labels` lists "
                    f"(the `multiple_choice` schema); for the `generation` schema set format: generation"
                )
            choices, labels = targets["choices"], targets["labels"]
            if len(choices) != len(labels):
                raise DataError(
                    f"{where}: {self.format}_targets has {len(choices)} choices but {len(labels)} labels"
                )
            answers = [
                (c, as_label(v, where, f"{self.format}_targets.labels")) for c, v in zip(choices, labels)
            ]
            if self.format == "mc1" and sum(label for _, label in answers) != 1:
                raise DataError(f"{where}: mc1_targets must mark exactly one choice correct")
        else:
            correct, incorrect = (
                _answer_list(row, "correct_answers", where),
                _answer_list(row, "incorrect_answers", where),
            )
            answers = [(a, 1) for a in correct] + [(a, 0) for a in incorrect]
        for text, _ in answers:
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: empty or non-text answer in the choices")
        return [(text.strip(), label) for text, label in answers]


def _answer_list(row: dict[str, Any], key: str, where: str) -> list[str]:
    """A list of answers from the hub schema (a list) or the official CSV ("Correct Answers": "a; b")."""
    if key in row:
        value = row[key]
    else:
        csv_key = key.replace("_", " ").title()
        if csv_key not in row:
            raise DataError(f"{where}: missing `{key}` (generation schema) for format: generation")
        value = [part.strip() for part in str(row[csv_key]).split(";") if part.strip()]
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: `{key}` must be a non-empty list of answers")
    return value
