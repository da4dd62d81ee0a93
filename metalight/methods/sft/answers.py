"""Collecting the model's own answers to questions (the raw material of self-labelled targets).

``collect_answers`` asks each question ``num_answers`` times (greedy: once) with the chosen QA prompt and
grades every answer; ESMA's SFT baseline labels from one greedy answer to its direct prompt, Know-thyself
from one greedy or k sampled answers (temperature 0.7) to ``Question: q\\nAnswer:``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.grading import GradingMode, is_correct
from metalight.models.chat import ChatMode, render_prompt
from metalight.models.generation import Decoding, Prompt, generate
from metalight.models.modes import eval_mode
from metalight.prompts import direct_prompt, know_thyself_qa_prompt

QAPrompt = Literal["esma", "know_thyself"]


@dataclass(frozen=True)
class AnswerSettings:
    """How answers are collected.

    Args:
        prompt: ``esma`` (ESMA's direct prompt, "Answer the following question with keywords") or
            ``know_thyself`` (``Question: q\\nAnswer:``).
        chat_template: send the prompt through the chat template (``auto``: when the tokenizer has one).
        num_answers: answers per question; 1 with ``decoding: greedy``, k (5 or upstream's 10) when sampling.
        decoding: ``greedy`` or ``sample``.
        temperature: sampling temperature (Know-thyself: 0.7).
        top_p: nucleus sampling mass.
        max_new_tokens: answer budget in tokens (ESMA 32, Know-thyself 64).
        max_input_tokens: longer prompts keep their last tokens.
        grading: correctness rule (``esma``, ``normalized`` or ``know_thyself``).
        language: prompt language of the ``esma`` prompt.
        batch_size: questions per ``generate`` call.
        seed: seed of the sampling (the caller adds the epoch so that each round draws new samples).
    """

    prompt: QAPrompt = "know_thyself"
    chat_template: ChatMode = "auto"
    num_answers: int = 1
    decoding: Literal["greedy", "sample"] = "greedy"
    temperature: float = 0.7
    top_p: float = 1.0
    max_new_tokens: int = 64
    max_input_tokens: int = 4096
    grading: GradingMode = "know_thyself"
    language: str = "en"
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self):
        problems = []
        if self.num_answers < 1:
            problems.append("num_answers must be >= 1")
        if self.decoding == "greedy" and self.num_answers != 1:
            problems.append("greedy decoding gives one answer: set num_answers: 1 or decoding: sample")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            problems.append("batch_size and max_new_tokens must be >= 1")
        if problems:
            raise ConfigError("answers: " + "; ".join(problems))


@dataclass
class AnswerSet:
    """The answers a model gave to one question and whether each was correct."""

    answers: list[str]
    correct: list[bool]

    @property
    def fraction_correct(self) -> float:
        """Share of the answers that were correct, in [0, 1]."""
        return sum(self.correct) / len(self.correct)

    def to_json(self) -> dict:
        """A JSON-ready dict."""
        return {"answers": self.answers, "correct": self.correct}


def qa_prompts(
    tokenizer, records: Sequence[QARecord], settings: AnswerSettings, system: str | None = None
) -> list[Prompt]:
    """The rendered answer-collection prompt of each record."""
    prompts = []
    for record in records:
        if settings.prompt == "esma":
            text = direct_prompt(record.question, settings.language, record.context)
        else:
            text = know_thyself_qa_prompt(record.question, record.context)
        prompts.append(Prompt(*render_prompt(tokenizer, text, settings.chat_template, system)))
    return prompts


def collect_answers(
    model,
    tokenizer,
    records: Sequence[QARecord],
    settings: AnswerSettings | None = None,
    system: str | None = None,
    synced_gpus: bool = False,
) -> dict[str, AnswerSet]:
    """Ask every record's question ``settings.num_answers`` times; returns ``{record.id: AnswerSet}``.

    Sampling uses its own seeded generator state (``settings.seed``) and leaves the global RNG untouched;
    ``settings`` defaults to ``AnswerSettings()``.
    """
    settings = AnswerSettings() if settings is None else settings
    decoding = Decoding(
        max_new_tokens=settings.max_new_tokens,
        strategy=settings.decoding,
        temperature=settings.temperature,
        top_p=settings.top_p,
    )
    k = settings.num_answers
    out: dict[str, AnswerSet] = {}
    device = getattr(model, "device", None)
    devices = [device] if device is not None and device.type == "cuda" else []
    with eval_mode(model), torch.random.fork_rng(devices=devices):
        torch.manual_seed(settings.seed)
        for start in range(0, len(records), settings.batch_size):
            chunk = records[start : start + settings.batch_size]
            prompts = qa_prompts(tokenizer, chunk, settings, system)
            texts = generate(
                model,
                tokenizer,
                prompts,
                decoding,
                settings.max_input_tokens,
                num_return_sequences=k,
                synced_gpus=synced_gpus,
            ).texts
            for i, record in enumerate(chunk):
                answers = texts[i * k : (i + 1) * k]
                out[record.id] = AnswerSet(
                    answers, [is_correct(a, record.answers, settings.grading) for a in answers]
                )
    return out


def require_answers(records: Sequence[QARecord], answers: Mapping[str, AnswerSet], builder: str) -> None:
    """Raise a clear error when a record has no collected answers (the builder cannot label it)."""
    from metalight.errors import DataError

    missing = [r.id for r in records if r.id not in answers or not answers[r.id].answers]
    if missing:
        raise DataError(
            f"{builder}: {len(missing)} of {len(records)} records have no collected answers "
            f"(first: {missing[0]!r}); collect them first with "
            f"metalight.methods.sft.answers.collect_answers(model, tokenizer, records) and pass the "
            f"result as `answers`"
        )
