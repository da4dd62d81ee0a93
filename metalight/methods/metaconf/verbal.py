"""MetaConf's verbal-confidence evaluation and its baselines: a greedy reply per question with a 0-10
confidence, parsed and graded, turned into metric inputs.

* ``verbal``: the MetaConf prompt (answer, self-reflection, confidence), as the trained model answers;
* ``direct``: answer and confidence only (upstream ``prompts/baselines.py``'s direct prompting);
* ``cot``: step-by-step reasoning, then answer and confidence;
* ``self_refine``: the direct reply, then a second turn asking the model to review it and give a refined
  answer and confidence (two generations; the second reply is the one graded).

Correctness of a reply is ``grade(records, answers)`` (the answer field, or the whole reply when it has none;
the whole reply with ``accuracy_on: completion``), given by the module: a task grader's score ≥ 0.5 for
records of a graded task family, else the alias rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from metalight.evaluation.sources import render_messages
from metalight.methods.evaluation import EVAL_SPLITS, gather_objects
from metalight.methods.metaconf.rewards import AccuracyOn, ResponseFormat, graded_text, parse_response
from metalight.metrics import MetacognitionMetrics
from metalight.models.chat import ChatMode
from metalight.models.generation import Decoding, generate
from metalight.models.modes import eval_mode
from metalight.prompts import METACONF_REFINE, MetaConfPrompt, metaconf_baseline_prompt, metaconf_prompt

BaselineName = Literal["direct", "cot", "self_refine"]
BASELINES: tuple[str, ...] = ("direct", "cot", "self_refine")
Grade = Callable[[Sequence[Any], Sequence[str]], list[bool]]
"""Correctness of answers to records: one bool per (record, answer)."""


@dataclass
class VerbalResult:
    """One question answered with a confidence and graded (``confidence`` on 0-10, ``None`` if unusable)."""

    id: str
    prompt: str
    completion: str
    answer: str | None
    reflection: str | None
    confidence: float | None
    correct: bool
    parsed: bool


@dataclass(frozen=True)
class ReplySettings:
    """How replies are asked for and graded: chat template and system prompt, reply and input budgets in
    tokens, the MetaConf prompt (``instructed`` or ``bare``) and what accuracy reads (``answer`` field or
    whole ``completion``)."""

    chat_template: ChatMode = "auto"
    system_prompt: str | None = None
    max_new_tokens: int = 256
    max_input_tokens: int = 512
    synced_gpus: bool = False
    prompt: MetaConfPrompt = "instructed"
    accuracy_on: AccuracyOn = "answer"


def _replies(model, tokenizer, conversations: Sequence[list[dict[str, str]]], s: ReplySettings):
    prompts = [render_messages(tokenizer, c, s.chat_template, s.system_prompt) for c in conversations]
    texts = generate(
        model,
        tokenizer,
        prompts,
        Decoding(max_new_tokens=s.max_new_tokens),
        s.max_input_tokens,
        synced_gpus=s.synced_gpus,
    ).texts
    return prompts, texts


def _graded(
    records: Sequence[Any],
    prompts,
    texts: Sequence[str],
    grade: Grade,
    response_format: ResponseFormat,
    needs_reflection: bool,
    accuracy_on: AccuracyOn = "answer",
) -> list[VerbalResult]:
    parsed = [parse_response(t, response_format) for t in texts]
    answers = [graded_text(p, t, accuracy_on) for p, t in zip(parsed, texts)]
    correct = grade(records, answers)
    return [
        VerbalResult(
            r.id,
            prompt.text,
            text,
            p.answer,
            p.reflection,
            p.confidence,
            ok,
            p.format_ok if needs_reflection else (p.answer is not None and p.confidence is not None),
        )
        for r, prompt, text, p, ok in zip(records, prompts, texts, parsed, correct)
    ]


@torch.no_grad()
def evaluate_verbal(
    model,
    tokenizer,
    records: Sequence[Any],
    grade: Grade,
    response_format: ResponseFormat = "plain",
    settings: ReplySettings = ReplySettings(),
) -> list[VerbalResult]:
    """Greedy MetaConf-format replies to ``records``, parsed and graded."""
    conversations = [
        [
            {
                "role": "user",
                "content": metaconf_prompt(r.question, response_format, r.context, settings.prompt),
            }
        ]
        for r in records
    ]
    prompts, texts = _replies(model, tokenizer, conversations, settings)
    return _graded(records, prompts, texts, grade, response_format, True, settings.accuracy_on)


@torch.no_grad()
def evaluate_baseline(
    kind: str,
    model,
    tokenizer,
    records: Sequence[Any],
    grade: Grade,
    settings: ReplySettings = ReplySettings(),
) -> list[VerbalResult]:
    """Greedy replies to baseline ``kind`` (``direct``, ``cot``, ``self_refine``), parsed and graded."""
    conversations = [
        [{"role": "user", "content": metaconf_baseline_prompt(kind, r.question, r.context)}] for r in records
    ]
    prompts, texts = _replies(model, tokenizer, conversations, settings)
    if kind == "self_refine":
        conversations = [
            c + [{"role": "assistant", "content": t}, {"role": "user", "content": METACONF_REFINE}]
            for c, t in zip(conversations, texts)
        ]
        prompts, texts = _replies(model, tokenizer, conversations, settings)
    return _graded(records, prompts, texts, grade, "plain", False, settings.accuracy_on)


def verbal_tensors(results: Sequence[VerbalResult], threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """Metric inputs: confidence/10 (NaN when undefined), said_yes = confidence/10 ≥ ``threshold``."""
    confidence = torch.tensor(
        [r.confidence / 10 if r.confidence is not None else float("nan") for r in results]
    )
    return {
        "correct": torch.tensor([r.correct for r in results], dtype=torch.bool),
        "said_yes": torch.nan_to_num(confidence, nan=-1.0) >= threshold,
        "confidence": confidence.float(),
        "parsed": torch.tensor([r.parsed for r in results], dtype=torch.bool),
    }


class VerbalEvaluation(nn.Module):
    """The verbal confidence (and the baselines) across validation / test passes, beside the dual prompt.

    ``step`` replies to one batch's questions in every kind (``verbal`` and each baseline) and adds the kept
    rows to that kind's metrics (the registry's collection) and replies; ``finish`` returns the split's values
    keyed ``verbal_<metric>`` / ``baseline_<name>_<metric>`` and every rank's replies per kind, and resets.

    Args:
        baselines: baseline prompts evaluated beside the MetaConf prompt.
        response_format: the MetaConf reply format (``plain`` or ``tagged``).
        confidence_threshold: said_yes = confidence/10 ≥ this.
        dprime_correction: how d'type2 handles rates of 0 or 1 (as the dual-prompt evaluation).
    """

    def __init__(
        self,
        baselines: Sequence[str],
        response_format: ResponseFormat,
        confidence_threshold: float,
        dprime_correction: str = "clip",
    ):
        super().__init__()
        self.kinds = ["verbal", *baselines]
        self.response_format, self.confidence_threshold = response_format, confidence_threshold
        self.metrics = nn.ModuleDict(
            {
                f"{split}_{kind}": MetacognitionMetrics(dprime_correction=dprime_correction)
                for split in EVAL_SPLITS
                for kind in self.kinds
            }
        )
        self.replies: dict[str, dict[str, list[VerbalResult]]] = {
            split: {kind: [] for kind in self.kinds} for split in EVAL_SPLITS
        }

    def step(
        self,
        model,
        tokenizer,
        records: Sequence[Any],
        padding: Sequence[bool],
        split: str,
        grade: Grade,
        settings: ReplySettings,
    ) -> None:
        """Reply to ``records`` in every kind (model in eval mode) and keep the rows that are not padding."""
        with eval_mode(model):
            results = {
                "verbal": evaluate_verbal(model, tokenizer, records, grade, self.response_format, settings)
            }
            for kind in self.kinds[1:]:
                results[kind] = evaluate_baseline(kind, model, tokenizer, records, grade, settings)
        for kind, replies in results.items():
            metric = self.metrics[f"{split}_{kind}"]
            tensors = {
                k: v.to(metric.device) for k, v in verbal_tensors(replies, self.confidence_threshold).items()
            }
            metric.update(
                **tensors,
                mask=torch.tensor([not pad for pad in padding], dtype=torch.bool, device=metric.device),
            )
            self.replies[split][kind].extend(v for v, pad in zip(replies, padding) if not pad)

    def finish(self, split: str) -> tuple[dict[str, float], dict[str, list[VerbalResult]]]:
        """The split's values (``verbal_*``, ``baseline_<name>_*``, ``n`` left out) and replies per kind."""
        values: dict[str, float] = {}
        replies: dict[str, list[VerbalResult]] = {}
        for kind in self.kinds:
            metric, prefix = (
                self.metrics[f"{split}_{kind}"],
                "verbal" if kind == "verbal" else f"baseline_{kind}",
            )
            values.update({f"{prefix}_{k}": float(v) for k, v in metric.compute().items() if k != "n"})
            metric.reset()
            replies[kind] = gather_objects(self.replies[split][kind])
            self.replies[split][kind] = []
        return values, replies
