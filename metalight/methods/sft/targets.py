"""Target builders: QA records (+ the model's collected answers) -> prompt-completion training examples.

* ``meta_answer`` (ESMA's SFT baseline, ``scripts/train_sft_meta.py``): the meta prompt ("Do you know the
  answer...?") -> "Yes" when the model's own greedy direct answer is correct, else "No". Upstream sends this
  prompt through the chat template (unlike its ES training and evaluation).
* ``knowledge`` (ESMA ``train_sft.py`` / Know-thyself phase 2): the question -> a gold answer.
  ``esma`` style: ESMA's direct prompt -> a random alias (seeded); ``know_thyself`` style: Know-thyself's QA
  system prompt and the bare question -> the first (primary) answer.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Literal

from metalight.data.examples import SFTExample
from metalight.data.records import QARecord
from metalight.errors import DataError
from metalight.methods.sft.answers import AnswerSet, require_answers
from metalight.prompts import KT_KNOWLEDGE_SYSTEM, direct_prompt, meta_prompt, qa_templates

KnowledgeStyle = Literal["esma", "know_thyself"]


def meta_answer_targets(
    records: Sequence[QARecord],
    answers: Mapping[str, AnswerSet],
    language: str = "en",
    yes_threshold: float = 1.0,
) -> list[SFTExample]:
    """Meta prompt -> yes-word when the share of correct answers is >= ``yes_threshold`` (one greedy answer:
    when it is correct), else the no-word."""
    require_answers(records, answers, "meta_answer")
    words = qa_templates(language)
    out = []
    for record in records:
        yes = answers[record.id].fraction_correct >= yes_threshold
        out.append(
            SFTExample(
                prompt=meta_prompt(record.question, language, record.context),
                completion=words.yes_word if yes else words.no_word,
                id=record.id,
                meta={"target": "yes" if yes else "no"},
            )
        )
    return out


def answer_replay_targets(
    records: Sequence[QARecord],
    answers: Mapping[str, AnswerSet],
    language: str = "en",
    system: str | None = None,
) -> list[SFTExample]:
    """The direct prompt -> the model's own (first) answer to it: self-distillation that holds the direct
    answers where they are while another target (the meta answer) is trained; empty answers are skipped."""
    require_answers(records, answers, "replay_answers")
    return [
        SFTExample(
            prompt=direct_prompt(r.question, language, r.context),
            completion=answers[r.id].answers[0],
            system=system,
            id=r.id,
            meta={"target": "replay"},
        )
        for r in records
        if answers[r.id].answers and answers[r.id].answers[0].strip()
    ]


def _answer_choice(record: QARecord, alias: Literal["first", "random"], seed: int) -> str:
    candidates = [a for a in record.answers if a.strip()]
    if not candidates:
        raise DataError(f"knowledge: record {record.id!r} has no non-empty gold answer to train on")
    return candidates[0] if alias == "first" else random.Random(f"{seed}-{record.id}").choice(candidates)


def knowledge_targets(
    records: Sequence[QARecord],
    style: KnowledgeStyle = "esma",
    alias: Literal["first", "random"] | None = None,
    seed: int = 0,
    language: str = "en",
) -> list[SFTExample]:
    """Question -> gold answer; ``alias`` defaults to each style's upstream choice (esma: random, seeded per
    record; know_thyself: first)."""
    alias = alias or ("random" if style == "esma" else "first")
    out = []
    for record in records:
        answer = _answer_choice(record, alias, seed)
        if style == "esma":
            out.append(
                SFTExample(
                    prompt=direct_prompt(record.question, language, record.context),
                    completion=answer,
                    id=record.id,
                )
            )
        else:
            question = f"{record.context}\n\n{record.question}" if record.context else record.question
            out.append(
                SFTExample(prompt=question, completion=answer, system=KT_KNOWLEDGE_SYSTEM, id=record.id)
            )
    return out
