"""Dual-prompt evaluation of a batch of questions (ESMA's measurement protocol).

For each question: the direct prompt -> greedy answer -> correct (grading); the meta prompt ("Do you know the
answer...?") -> a generated meta answer -> said_yes (yes/no rule), and P(yes) from the logits of the first
answer token (yes/no variants). With ``meta_readout="generate"`` direct and meta prompts share one batched
``generate`` call and P(yes) comes from its prefill for free; with ``"logits"`` the meta answer is not
generated at all: P(yes) comes from one forward pass and said_yes = P(yes) > 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.grading import (
    GradingMode,
    YesNoRule,
    exact_match,
    is_correct,
    parse_meta_answer,
    suspect_match,
)
from metalight.models.chat import ChatMode, render_prompt, uses_chat_template
from metalight.models.generation import (
    Decoder,
    Decoding,
    DecodingStrategy,
    Prompt,
    TruncationSide,
    encode_prompts,
    generate,
    p_yes_from_logits,
    truncate,
    yes_no_token_ids,
    yes_probability,
)
from metalight.prompts import PROMPT_VERSION, direct_prompt, meta_prompt, qa_templates

MetaReadout = Literal["generate", "logits"]


@dataclass(frozen=True)
class EvalSettings:
    """Everything that changes the evaluation's numbers; all of it is recorded in ``report.json``.

    Args:
        grading: correctness rule, ``esma`` (alias substring, as the paper), ``normalized`` (SQuAD) or
            ``know_thyself`` (two-way containment, Know-thyself).
        yes_no_rule: ``esma`` (any "yes" in the meta answer) or ``strict`` (parsed opening; unparsed = no).
        language: prompt language (en, ko, zh, es), as ESMA's MKQA evaluation.
        direct_chat_template: chat template for the direct prompt (``auto``: when the tokenizer has one).
        meta_chat_template: chat template for the meta prompt; ``never`` (default) sends it as raw text,
            as ESMA does.
        meta_readout: ``generate`` the meta answer (P(yes) from its first step), or read only ``logits``.
        max_new_tokens: generation budget per answer, in tokens (ESMA: 32).
        max_input_tokens: prompts longer than this are cut (ESMA: 128); such rows are flagged
            ``prompt_truncated`` with the text actually sent, and counted as ``truncated_rows``.
        truncation_side: ``left`` (default) keeps a long prompt's last tokens (the question end and the
            assistant header); ``right`` keeps its first tokens, as upstream ESMA's ``truncation=True``.
        decoding: ``greedy`` (default), ``sample``, or ``model_default`` (the model's generation_config).
        system_prompt: optional system message for chat-templated prompts.
        decoder: ``compact`` (finished rows leave the batch), ``hf`` (``model.generate``) or ``auto``
            (``compact`` unless ``decoding: model_default`` or sharded lock-step generation); greedy answers
            are the same either way.
    """

    grading: GradingMode = "esma"
    yes_no_rule: YesNoRule = "esma"
    language: str = "en"
    direct_chat_template: ChatMode = "auto"
    meta_chat_template: ChatMode = "never"
    meta_readout: MetaReadout = "generate"
    max_new_tokens: int = 32
    max_input_tokens: int = 128
    truncation_side: TruncationSide = "left"
    decoding: DecodingStrategy = "greedy"
    system_prompt: str | None = None
    decoder: Decoder = "auto"

    def check(self) -> EvalSettings:
        """Raise ``ConfigError`` naming the ``evaluation.*`` keys of settings that cannot work; returns
        self."""
        problems = []
        if self.decoder == "compact" and self.decoding == "model_default":
            problems.append(
                "evaluation.decoder: compact decodes greedy or sample only, but evaluation.decoding is "
                "model_default (the model's own generation_config): set decoder: hf or auto"
            )
        for key in ("max_new_tokens", "max_input_tokens"):
            if getattr(self, key) < 1:
                problems.append(f"evaluation.{key}: {getattr(self, key)} must be >= 1 (tokens)")
        if problems:
            raise ConfigError("; ".join(problems))
        return self

    def describe(self, tokenizer=None) -> dict[str, Any]:
        """Settings for a report, with the prompt version and whether each chat template was really used."""
        out = asdict(self) | {"prompt_version": PROMPT_VERSION}
        if tokenizer is not None:
            out["direct_chat_template_used"] = uses_chat_template(tokenizer, self.direct_chat_template)
            out["meta_chat_template_used"] = uses_chat_template(tokenizer, self.meta_chat_template)
        return out


@dataclass
class SampleResult:
    """One evaluated question: what was asked, answered, and how it was scored."""

    id: str
    question: str
    aliases: list[str]
    direct_prompt: str
    direct_answer: str
    correct: bool
    exact_match: bool
    meta_prompt: str
    meta_answer: str | None
    said_yes: bool
    meta_parsed: bool
    p_yes: float
    # The direct or meta prompt was longer than max_input_tokens: the prompts above are the kept ends.
    prompt_truncated: bool = False
    # Credited by the esma substring rule only through a numeric or <= 2-character alias
    # (grading.suspect_match).
    suspect_match: bool = False
    # The record's meta (e.g. the competence testbed's family and level), for per-group analysis.
    meta: dict[str, Any] = field(default_factory=dict)
    # The question (or its context) holds the tokenizer's control tokens as text (e.g. <|im_start|>): they
    # reach the model as real control tokens, not as the text a user wrote.
    control_tokens: bool = False
    # Tokens the model chose for the direct answer (stop token included), for token-level confidence
    # scores; kept in memory only, not written to the samples file.
    direct_completion_ids: list[int] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (one line of ``samples/<split>.jsonl``)."""
        out = asdict(self)
        out.pop("direct_completion_ids")
        return out


def build_prompts(
    tokenizer, records: Sequence[QARecord], settings: EvalSettings
) -> tuple[list[Prompt], list[Prompt]]:
    """The rendered direct and meta prompts of each record."""
    direct, meta = [], []
    for record in records:
        d = direct_prompt(record.question, settings.language, record.context)
        m = meta_prompt(record.question, settings.language, record.context)
        direct.append(
            Prompt(*render_prompt(tokenizer, d, settings.direct_chat_template, settings.system_prompt))
        )
        meta.append(Prompt(*render_prompt(tokenizer, m, settings.meta_chat_template, settings.system_prompt)))
    return direct, meta


def sent_prompts(
    tokenizer, prompts: Sequence[Prompt], max_input_tokens: int, truncation_side: TruncationSide = "left"
) -> tuple[list[Prompt], list[bool]]:
    """The prompts as the model receives them: a prompt longer than ``max_input_tokens`` is cut on
    ``truncation_side`` (see :func:`metalight.models.generation.encode_prompts`) and replaced by the decoded
    text kept; returns the prompts and which were truncated."""
    full = encode_prompts(tokenizer, prompts, None)
    out, truncated = [], []
    for prompt, ids in zip(prompts, full):
        cut = len(ids) > max_input_tokens
        truncated.append(cut)
        kept = truncate(ids, max_input_tokens, truncation_side)
        out.append(Prompt(tokenizer.decode(kept), prompt.templated) if cut else prompt)
    return out, truncated


def meta_token_ids(tokenizer, settings: EvalSettings) -> tuple[list[int], list[int]] | None:
    """Yes/no token variants for this language, or ``None`` when the tokenizer has no single-token form."""
    templates = qa_templates(settings.language)
    try:
        return yes_no_token_ids(tokenizer, templates.yes_word, templates.no_word)
    except ValueError:
        if settings.meta_readout == "logits":
            raise
        return None


@torch.no_grad()
def evaluate_records(
    model,
    tokenizer,
    records: Sequence[QARecord],
    settings: EvalSettings | None = None,
    synced_gpus: bool = False,
    prefix_cache: bool = True,
) -> list[SampleResult]:
    """Evaluate ``records`` with the dual-prompt protocol; returns one :class:`SampleResult` per record.
    ``prefix_cache``: prefill prompt prefixes shared by many rows once (results are unchanged); ``settings``
    defaults to ``EvalSettings()``."""
    if not records:
        return []
    settings = EvalSettings() if settings is None else settings
    direct, meta = build_prompts(tokenizer, records, settings)
    ids = meta_token_ids(tokenizer, settings)
    decoding = Decoding(max_new_tokens=settings.max_new_tokens, strategy=settings.decoding)
    n = len(records)
    if settings.meta_readout == "generate":
        out = generate(
            model,
            tokenizer,
            direct + meta,
            decoding,
            settings.max_input_tokens,
            capture_token_ids=(ids[0] + ids[1]) if ids else None,
            synced_gpus=synced_gpus,
            prefix_cache=prefix_cache,
            decoder=settings.decoder,
            truncation_side=settings.truncation_side,
        )
        answers, meta_texts = out.texts[:n], out.texts[n:]
        direct_ids = [out.generated_ids(i) for i in range(n)]
        p_yes = (
            p_yes_from_logits(out.first_token_logits[n:], len(ids[0])).tolist() if ids else [float("nan")] * n
        )
    else:
        out = generate(
            model,
            tokenizer,
            direct,
            decoding,
            settings.max_input_tokens,
            synced_gpus=synced_gpus,
            prefix_cache=prefix_cache,
            decoder=settings.decoder,
            truncation_side=settings.truncation_side,
        )
        answers, direct_ids = out.texts, [out.generated_ids(i) for i in range(n)]
        p_yes = yes_probability(
            model,
            tokenizer,
            meta,
            ids[0],
            ids[1],
            settings.max_input_tokens,
            prefix_cache=prefix_cache,
            synced_gpus=synced_gpus,
            truncation_side=settings.truncation_side,
        ).tolist()
        meta_texts = None
    sent_direct, cut_direct = sent_prompts(
        tokenizer, direct, settings.max_input_tokens, settings.truncation_side
    )
    sent_meta, cut_meta = sent_prompts(tokenizer, meta, settings.max_input_tokens, settings.truncation_side)
    results = score_answers(records, sent_direct, sent_meta, answers, meta_texts, p_yes, settings, direct_ids)
    marks = control_tokens(tokenizer)
    for result, record, d_cut, m_cut in zip(results, records, cut_direct, cut_meta):
        result.prompt_truncated = d_cut or m_cut
        result.control_tokens = any(mark in f"{record.question}{record.context or ''}" for mark in marks)
    return results


def control_tokens(tokenizer) -> tuple[str, ...]:
    """The tokenizer's special tokens as text (``<|im_start|>``, ``</s>``, ...): written inside a question
    they are encoded as the real control tokens."""
    names = set(getattr(tokenizer, "all_special_tokens", None) or [])
    names |= {
        t.content
        for t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values()
        if getattr(t, "special", False)
    }
    return tuple(sorted(name for name in names if len(name) > 1))


def score_answers(
    records: Sequence[QARecord],
    direct: Sequence[Prompt],
    meta: Sequence[Prompt],
    answers: Sequence[str],
    meta_texts: Sequence[str] | None,
    p_yes: Sequence[float],
    settings: EvalSettings,
    direct_ids: Sequence[list[int]] | None = None,
) -> list[SampleResult]:
    """Grade the direct answers and read the meta decisions: generated ``meta_texts`` parsed with the
    yes/no rule, or (``meta_texts=None``, logits read-out) said_yes = P(yes) > 0.5. ``direct_ids`` (the
    answers' generated token ids) are kept in memory for token-level confidence sources when given."""
    n = len(records)
    if direct_ids is None:
        direct_ids = [[] for _ in range(n)]
    if meta_texts is None:
        meta_texts, said_yes, parsed = [None] * n, [p > 0.5 for p in p_yes], [True] * n
    else:
        decisions = [parse_meta_answer(t, settings.yes_no_rule, settings.language) for t in meta_texts]
        said_yes, parsed = [d.said_yes for d in decisions], [d.parsed for d in decisions]
    return [
        SampleResult(
            id=r.id,
            question=r.question,
            aliases=list(r.answers),
            direct_prompt=dp.text,
            direct_answer=a,
            correct=is_correct(a, r.answers, settings.grading),
            exact_match=exact_match(a, r.answers),
            meta_prompt=mp.text,
            meta_answer=mt,
            said_yes=bool(y),
            meta_parsed=bool(ok),
            p_yes=float(p),
            direct_completion_ids=chosen,
            suspect_match=settings.grading == "esma" and suspect_match(a, r.answers),
            meta=dict(r.meta),
        )
        for r, dp, mp, a, mt, y, ok, p, chosen in zip(
            records, direct, meta, answers, meta_texts, said_yes, parsed, p_yes, direct_ids
        )
    ]


def results_to_tensors(results: Sequence[SampleResult]) -> dict[str, torch.Tensor]:
    """Stack per-sample results into the tensors the metrics take (correct, said_yes, confidence, parsed)."""
    return {
        "correct": torch.tensor([r.correct for r in results], dtype=torch.bool),
        "said_yes": torch.tensor([r.said_yes for r in results], dtype=torch.bool),
        "confidence": torch.tensor([r.p_yes for r in results], dtype=torch.float32),
        "parsed": torch.tensor([r.meta_parsed for r in results], dtype=torch.bool),
    }
