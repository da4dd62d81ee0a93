"""Confidence sources: the ways to ask a model how sure it is, each a score per answer (higher = surer).

Every source scores the *direct answer* of the dual-prompt protocol, so all of them are measured against
the same correctness and their metrics compare (:func:`metalight.metrics.confidence_metrics`).

========================  ==================================================================  ===========
source                    score (yes-report)                                                   needs
========================  ==================================================================  ===========
``p_yes``                 P(yes) of the first meta-answer token (report: P > 0.5)               logits
``meta``                  1 if the generated meta answer says yes, else 0 (ESMA)                text
``idk``                   1 if the IDK prompt's answer is not "I don't know" (report: answered) text
``max_seq_prob``          log-probability of the direct answer, stop token included, in nats  logits
                          (LM-Polygraph MaximumSequenceProbability, negated)
``mean_token_entropy``    minus the mean next-token entropy over the answer's tokens, in nats   logits
                          (LM-Polygraph MeanTokenEntropy, negated)
``p_true``                P(True) / (P(True) + P(False)) after the p(True) prompt (report > 0.5) logits
``verbalized``            the probability the model states when asked (report: > 0.5)           text
========================  ==================================================================  ===========

Text sources need only replies, so they work for API models too (:mod:`metalight.methods.evaluators.api`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings, SampleResult
from metalight.grading import is_correct
from metalight.models.chat import ChatMode, render_chat, render_prompt, uses_chat_template
from metalight.models.generation import (
    Decoding,
    Prompt,
    TokenScores,
    completion_token_scores,
    generate,
    yes_no_token_ids,
    yes_probability,
)
from metalight.prompts import direct_prompt, idk_prompt, p_true_prompt, qa_templates, verbalized_conversation

SourceName = Literal["p_yes", "meta", "idk", "max_seq_prob", "mean_token_entropy", "p_true", "verbalized"]
TextSourceName = Literal["meta", "idk", "verbalized"]
Messages = list[dict[str, str]]
Responder = Callable[[Sequence[Messages], int], list[str | None]]
"""Replies to chat conversations within a token budget (``None``: no reply could be obtained)."""

VERBALIZED_MAX_NEW_TOKENS = 10  # LM-Polygraph Verbalized2S: a number needs few tokens
VERBALIZED_EXTRA_INPUT_TOKENS = 256  # the follow-up conversation is longer than one prompt


@dataclass(frozen=True)
class SourceInfo:
    """How to read a source's score: a label, the axis unit, and whether it is a probability of being
    right."""

    label: str
    unit: str
    probability: bool
    needs_logits: bool


SOURCES: dict[str, SourceInfo] = {
    "p_yes": SourceInfo("P(yes)", "P(yes) to the meta question", True, True),
    "meta": SourceInfo("meta-question", "meta answer (1 = yes)", False, False),
    "idk": SourceInfo("IDK prompt", "answered (1) vs 'I don't know' (0)", False, False),
    "max_seq_prob": SourceInfo("max sequence probability", "answer log-probability (nats)", False, True),
    "mean_token_entropy": SourceInfo("mean token entropy", "minus mean token entropy (nats)", False, True),
    "p_true": SourceInfo("p(True)", "P(True) of the answer", True, True),
    "verbalized": SourceInfo("verbalised confidence", "stated probability of being correct", True, False),
}


def check_sources(names: Sequence[str], white_box: bool = True) -> list[str]:
    """Validate source names (and that they need no logits when ``white_box`` is False); return them."""
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ConfigError(f"unknown confidence source(s) {unknown}; choose from {list(get_args(SourceName))}")
    if not white_box and (blocked := [n for n in names if SOURCES[n].needs_logits]):
        raise ConfigError(
            f"source(s) {blocked} need the model's logits, which an API model does not return; "
            f"use {list(get_args(TextSourceName))}"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"confidence sources listed twice: {list(names)}")
    return list(names)


@dataclass
class SourceScores:
    """One source over a batch: ``score`` per answer (NaN = none), the yes-report (``None`` if the source
    has none), and per-answer extras written to the samples file (e.g. the IDK answer)."""

    score: list[float]
    report: list[bool] | None = None
    extras: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SourceContext:
    """What the sources of one batch read: the records, their dual-prompt results, the settings, a way to get
    text replies, and (white-box sources) the model and tokenizer."""

    records: Sequence[QARecord]
    results: Sequence[SampleResult]
    settings: EvalSettings
    respond: Responder
    model: Any = None
    tokenizer: Any = None
    _token_scores: TokenScores | None = None

    def token_scores(self) -> TokenScores:
        """Per-token log-probs / entropies of the direct answers (computed once, shared by two sources)."""
        if self._token_scores is None:
            prompts = [
                Prompt(
                    *render_prompt(
                        self.tokenizer,
                        direct_prompt(r.question, self.settings.language, r.context),
                        self.settings.direct_chat_template,
                        self.settings.system_prompt,
                    )
                )
                for r in self.records
            ]
            self._token_scores = completion_token_scores(
                self.model,
                self.tokenizer,
                prompts,
                [s.direct_completion_ids for s in self.results],
                self.settings.max_input_tokens,
                truncation_side=self.settings.truncation_side,
            )
        return self._token_scores


# ---- parsing -----------------------------------------------------------------------------------------------
def is_abstention(text: str) -> bool:
    """ESMA's IDK rule: the answer contains "i don't know" (lower-cased; a typographic apostrophe counts)."""
    return "i don't know" in text.lower().replace("’", "'")


_LABELLED = re.compile(r"probability\W{0,3}(\d+(?:\.\d+)?|\.\d+)\s*(%?)", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?|\.\d+)\s*(%?)")


def parse_probability(text: str) -> float:
    """The probability stated in a reply: the number after "Probability:" if present, else the first number;
    a percentage ("85%", or a bare number in (1, 100]) is divided by 100. NaN when there is none in [0, 1]."""
    match = _LABELLED.search(text) or _NUMBER.search(text)
    if not match:
        return math.nan
    value = float(match.group(1))
    if match.group(2) or 1 < value <= 100:
        value /= 100
    return value if 0 <= value <= 1 else math.nan


# ---- responders --------------------------------------------------------------------------------------------
def render_messages(tokenizer, messages: Messages, mode: ChatMode, system: str | None = None) -> Prompt:
    """A conversation as model input: the chat template (ending with the assistant header), or raw text
    with the turns on consecutive lines when the template is off or missing."""
    if len(messages) == 1:
        return Prompt(*render_prompt(tokenizer, messages[0]["content"], mode, system))
    if uses_chat_template(tokenizer, mode):
        head = [{"role": "system", "content": system}] if system else []
        return Prompt(render_chat(tokenizer, head + list(messages), add_generation_prompt=True), True)
    text = "\n".join(m["content"].rstrip("\n") for m in messages) + "\n"
    return Prompt(f"{system}\n\n{text}" if system else text, False)


def local_responder(model, tokenizer, settings: EvalSettings, synced_gpus: bool = False) -> Responder:
    """Replies from a local model: each conversation rendered with the direct prompt's chat setting, then
    one batched ``generate`` call with the evaluation's decoding. Multi-turn conversations get
    ``VERBALIZED_EXTRA_INPUT_TOKENS`` more input budget than ``settings.max_input_tokens``."""

    def respond(conversations: Sequence[Messages], max_new_tokens: int) -> list[str | None]:
        prompts = [
            render_messages(tokenizer, c, settings.direct_chat_template, settings.system_prompt)
            for c in conversations
        ]
        budget = settings.max_input_tokens + (
            VERBALIZED_EXTRA_INPUT_TOKENS if any(len(c) > 1 for c in conversations) else 0
        )
        decoding = Decoding(max_new_tokens=max_new_tokens, strategy=settings.decoding)
        return generate(
            model,
            tokenizer,
            prompts,
            decoding,
            budget,
            synced_gpus=synced_gpus,
            truncation_side=settings.truncation_side,
        ).texts

    return respond


def _user(text: str) -> Messages:
    return [{"role": "user", "content": text}]


# ---- the sources -------------------------------------------------------------------------------------------
def _p_yes(ctx: SourceContext) -> SourceScores:
    scores = [r.p_yes for r in ctx.results]
    return SourceScores(scores, [p > 0.5 for p in scores])  # NaN > 0.5 is False: no score, no yes


def _meta(ctx: SourceContext) -> SourceScores:
    return SourceScores([float(r.said_yes) for r in ctx.results], [r.said_yes for r in ctx.results])


def _idk(ctx: SourceContext) -> SourceScores:
    language = ctx.settings.language
    replies = ctx.respond(
        [_user(idk_prompt(r.question, language, r.context)) for r in ctx.records], ctx.settings.max_new_tokens
    )
    scores, extras = [], []
    for record, reply in zip(ctx.records, replies):
        answered = None if reply is None else not is_abstention(reply)
        scores.append(math.nan if answered is None else float(answered))
        extras.append(
            {
                "idk_answer": reply,
                "idk_answered": answered,
                "idk_correct": None
                if reply is None
                else is_correct(reply, record.answers, ctx.settings.grading),
            }
        )
    return SourceScores(scores, [s == 1.0 for s in scores], extras)


def _max_seq_prob(ctx: SourceContext) -> SourceScores:
    return SourceScores([math.fsum(lp) if lp else math.nan for lp in ctx.token_scores().logprobs])


def _mean_token_entropy(ctx: SourceContext) -> SourceScores:
    return SourceScores([-math.fsum(e) / len(e) if e else math.nan for e in ctx.token_scores().entropies])


def _p_true(ctx: SourceContext) -> SourceScores:
    settings, tokenizer = ctx.settings, ctx.tokenizer
    prompts = [
        Prompt(
            *render_prompt(
                tokenizer,
                p_true_prompt(r.question, s.direct_answer, r.context),
                settings.meta_chat_template,
                settings.system_prompt,
            )
        )
        for r, s in zip(ctx.records, ctx.results)
    ]
    true_ids, false_ids = yes_no_token_ids(tokenizer, "True", "False")
    scores = yes_probability(
        ctx.model,
        tokenizer,
        prompts,
        true_ids,
        false_ids,
        settings.max_input_tokens,
        truncation_side=settings.truncation_side,
    ).tolist()
    return SourceScores(scores, [p > 0.5 for p in scores])


def _verbalized(ctx: SourceContext) -> SourceScores:
    language = ctx.settings.language
    replies = ctx.respond(
        [
            verbalized_conversation(direct_prompt(r.question, language, r.context), s.direct_answer)
            for r, s in zip(ctx.records, ctx.results)
        ],
        VERBALIZED_MAX_NEW_TOKENS,
    )
    scores = [math.nan if reply is None else parse_probability(reply) for reply in replies]
    return SourceScores(scores, [p > 0.5 for p in scores], [{"verbalized_reply": reply} for reply in replies])


SOURCE_FUNCTIONS: dict[str, Callable[[SourceContext], SourceScores]] = {
    "p_yes": _p_yes,
    "meta": _meta,
    "idk": _idk,
    "max_seq_prob": _max_seq_prob,
    "mean_token_entropy": _mean_token_entropy,
    "p_true": _p_true,
    "verbalized": _verbalized,
}


def compute_sources(names: Sequence[str], ctx: SourceContext) -> dict[str, SourceScores]:
    """Every requested source for one batch, in the order given."""
    return {name: SOURCE_FUNCTIONS[name](ctx) for name in names}


def check_idk_language(language: str) -> None:
    """Raise ``ConfigError`` when the IDK prompt does not exist for ``language`` (upstream: English only)."""
    if qa_templates(language).idk is None:
        raise ConfigError(
            f"the IDK prompt exists only in English (as upstream ESMA); evaluation.language is "
            f"{language!r}: drop 'idk' from the sources or set evaluation.language: en"
        )
