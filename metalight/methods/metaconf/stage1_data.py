"""MetaConf stage 1: supervised targets ``Answer / Self-reflection / Confidence`` built from a model's own
answers.

For each question (upstream builds this data with LLaMA-Factory and a DeepSeek writer; the recipe here is
metalight's, from the paper's description):

1. the model's greedy answer to the direct prompt, graded against the aliases -> the ``Answer`` target and its
   objective score (10 × correctness);
2. ``samples`` answers sampled at ``temperature``; 10 × the share that is correct -> the ``Confidence`` target
   (an empirical probability of being right, like upstream's fractional confidences such as 3.6);
3. a writer model (local or an endpoint) writes the first-person ``Self-reflection`` with upstream's
   reflection-generation prompt, given the answer, the confidence and the objective score as hidden guidance.

The rows are written in TRL's prompt-completion convention (``{"id", "prompt", "completion"}`` plus the
targets' provenance), which ``PromptCompletionDataModule`` reads for ``SFTModule``. A provided file can
replace steps 1-3: upstream's ShareGPT rows
(``{"conversations": [{"from": "human", ...}, {"from": "gpt", ...}]}``) or collected outputs
(``{"question", "answer", "confidence", "reflection"?, "correct"?}``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from metalight.data.readers import read_rows
from metalight.errors import DataError
from metalight.grading import GradingMode, is_correct
from metalight.methods.metaconf.judge import ChatBackend
from metalight.methods.metaconf.rewards import ResponseFormat, format_response
from metalight.models.chat import ChatMode, render_prompt
from metalight.models.generation import Decoding, Prompt, generate
from metalight.prompts import MetaConfPrompt, direct_prompt, metaconf_prompt, metaconf_reflection_prompt

log = logging.getLogger(__name__)


@dataclass
class Stage1Row:
    """One question's targets: ``answer`` (its ``correct``-ness in [0, 1]), ``confidence`` on 0-10, and the
    ``reflection`` (``None`` until written)."""

    id: str
    question: str
    answer: str
    correct: float
    confidence: float
    reflection: str | None = None


@torch.no_grad()
def collect_targets(
    model,
    tokenizer,
    records: Sequence[Any],
    samples: int = 5,
    temperature: float = 0.7,
    max_new_tokens: int = 32,
    grading: GradingMode = "esma",
    chat_template: ChatMode = "auto",
    batch_size: int = 16,
    seed: int = 0,
) -> list[Stage1Row]:
    """Steps 1-2: the greedy answer and the sampled-accuracy confidence of every record."""
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    rows = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            prompts = [
                Prompt(*render_prompt(tokenizer, direct_prompt(r.question, context=r.context), chat_template))
                for r in chunk
            ]
            greedy = generate(model, tokenizer, prompts, Decoding(max_new_tokens=max_new_tokens)).texts
            sampled = generate(
                model,
                tokenizer,
                prompts,
                Decoding(max_new_tokens, "sample", temperature),
                num_return_sequences=samples,
            ).texts
            for i, record in enumerate(chunk):
                right = sum(
                    is_correct(a, record.answers, grading) for a in sampled[i * samples : (i + 1) * samples]
                )
                rows.append(
                    Stage1Row(
                        record.id,
                        record.question,
                        greedy[i],
                        float(is_correct(greedy[i], record.answers, grading)),
                        round(10 * right / samples, 1),
                    )
                )
    return rows


def write_reflections(rows: Sequence[Stage1Row], writer: ChatBackend) -> tuple[list[Stage1Row], int]:
    """Step 3: fill each row's reflection; returns (rows with a reflection, number the writer failed on)."""
    todo = [r for r in rows if not r.reflection]
    prompts = [metaconf_reflection_prompt(r.question, r.answer, r.confidence, 10 * r.correct) for r in todo]
    replies = writer.complete_many([[{"role": "user", "content": p}] for p in prompts])
    for row, reply in zip(todo, replies):
        row.reflection = " ".join(reply.split()) if reply else None
    failed = sum(not r.reflection for r in rows)
    if failed:
        log.warning(
            "reflection writer: no reflection for %d of %d questions; they are left out", failed, len(rows)
        )
    return [r for r in rows if r.reflection], failed


def sft_rows(
    rows: Iterable[Stage1Row],
    response_format: ResponseFormat = "plain",
    prompt: MetaConfPrompt = "instructed",
) -> list[dict[str, Any]]:
    """Prompt-completion rows: the MetaConf prompt (``instructed``, or ``bare``: the question alone, as
    upstream's stage-1 file; stage 2's ``prompt`` must match) and the formatted targets (plus their
    provenance)."""
    out = []
    for row in rows:
        if not row.reflection:
            raise DataError(f"question {row.id!r} has no reflection; run write_reflections first")
        out.append(
            {
                "id": row.id,
                "prompt": metaconf_prompt(row.question, response_format, prompt=prompt),
                "completion": format_response(row.answer, row.reflection, row.confidence, response_format),
                "correct": row.correct,
                "confidence": row.confidence,
            }
        )
    return out


def read_provided(path: str | Path) -> tuple[list[dict[str, Any]], list[Stage1Row]]:
    """A provided file: (ready prompt-completion rows from ShareGPT conversations, collected-output rows that
    may still need a reflection). Errors name the file and line."""
    ready, rows = [], []
    for where, row in read_rows(path):
        if "conversations" in row:
            turns = row["conversations"]
            human = [t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "human"]
            gpt = [t.get("value") for t in turns if isinstance(t, dict) and t.get("from") == "gpt"]
            if not human or not gpt or not all(isinstance(t, str) and t.strip() for t in (human[0], gpt[0])):
                raise DataError(f"{where}: a ShareGPT row needs a non-empty 'human' and 'gpt' turn")
            ready.append({"id": str(row.get("id", where)), "prompt": human[0], "completion": gpt[0]})
            continue
        missing = [k for k in ("question", "answer", "confidence") if k not in row]
        if missing:
            raise DataError(
                f"{where}: missing {', '.join(missing)}; a row is ShareGPT conversations or "
                f'{{"question", "answer", "confidence" (0-10), "reflection"?, "correct"?}}'
            )
        confidence = row["confidence"]
        if not isinstance(confidence, (int, float)) or not 0 <= confidence <= 10:
            raise DataError(f"{where}: confidence must be a number in [0, 10], got {confidence!r}")
        rows.append(
            Stage1Row(
                str(row.get("id", where)),
                row["question"],
                str(row["answer"]),
                float(row.get("correct", confidence / 10)),
                float(confidence),
                row.get("reflection"),
            )
        )
    return ready, rows


def describe(rows: Sequence[Stage1Row]) -> dict[str, float]:
    """Summary of the targets: count, greedy accuracy, mean confidence."""
    n = max(1, len(rows))
    return {
        "questions": len(rows),
        "accuracy": sum(r.correct for r in rows) / n,
        "mean_confidence": sum(r.confidence for r in rows) / n,
    }


def to_json(rows: Sequence[Stage1Row]) -> list[dict[str, Any]]:
    """The rows as dicts (e.g. to save collected outputs and add reflections later)."""
    return [asdict(r) for r in rows]
