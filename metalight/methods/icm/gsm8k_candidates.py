"""GSM8K-verification candidates: a model's sampled solutions to GSM8K problems, as labelled claim rows.

Lives with ICM rather than in ``metalight.data`` because it runs a model, and data knows no model;
``scripts/build_gsm8k_verification.py`` writes the rows that ``GSM8KVerificationDataModule`` reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from metalight.data.sources.gsm8k_verification import truncate_after_answer, verification_row
from metalight.models.chat import render_prompt
from metalight.models.generation import Decoding, Prompt, generate
from metalight.prompts import GSM8K_SOLVE_PROMPT


def build_verification_rows(
    model,
    tokenizer,
    problems: Sequence[dict[str, str]],
    num_candidates: int = 2,
    max_new_tokens: int = 160,
    temperature: float = 0.7,
    seed: int = 0,
    model_name: str = "model",
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """Per problem: its gold solution (label 1) and ``num_candidates`` sampled model solutions, deduplicated.

    ``max_new_tokens`` is in tokens per solution; ``batch_size`` is problems per ``generate`` call, and each
    batch is sampled under ``torch.manual_seed(seed + index of its first problem)``.
    """
    decoding = Decoding(max_new_tokens=max_new_tokens, strategy="sample", temperature=temperature)
    rows = []
    for start in range(0, len(problems), batch_size):
        batch = problems[start : start + batch_size]
        torch.manual_seed(seed + start)
        prompts = [
            Prompt(*render_prompt(tokenizer, GSM8K_SOLVE_PROMPT.format(question=p["question"])))
            for p in batch
        ]
        texts = generate(
            model, tokenizer, prompts, decoding, max_input_tokens=None, num_return_sequences=num_candidates
        ).texts
        for offset, problem in enumerate(batch):
            solutions = [problem["solution"]]
            for text in texts[offset * num_candidates : (offset + 1) * num_candidates]:
                text = truncate_after_answer(text)
                if text and text not in solutions:
                    solutions.append(text)
            rows += [
                verification_row(problem, s, "gold" if i == 0 else model_name, i)
                for i, s in enumerate(solutions)
            ]
    return rows
