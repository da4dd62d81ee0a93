"""Asking the model for its judgment ("Can you answer this question correctly?") and scoring P(yes).

P(yes) follows Know-thyself's AUROC score: in the greedy judgment, find the first generated token that is
the ``yes`` or the ``no`` token (the last token of ``tokenizer.encode("yes")`` / ``("no")``, i.e. the word
inside ``\\boxed{...}``), and take softmax([logit_yes, logit_no])[0] at that step; 0.5 when neither token
is generated. The logits are read from the LM head during generation (no extra forward pass).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from metalight.data.records import QARecord
from metalight.methods.judgment.labels import Ability, LabelMode, parse_judgment
from metalight.models.chat import ChatMode
from metalight.models.generation import Decoding, Prompt, generate
from metalight.models.modes import eval_mode
from metalight.prompts import judgment_prompt


@dataclass(frozen=True)
class JudgmentSettings:
    """How the judgment is asked.

    Args:
        max_new_tokens: judgment budget in tokens (upstream: 32, greedy).
        max_input_tokens: longer prompts keep their last tokens (upstream: 4096).
        chat_template: ``auto`` (upstream always uses the chat template: system + user turn).
        batch_size: questions per ``generate`` call.
        with_context: show open-book passages in the judgment prompt (upstream's test prompts do).
    """

    max_new_tokens: int = 32
    max_input_tokens: int = 4096
    chat_template: ChatMode = "auto"
    batch_size: int = 32
    with_context: bool = True


@dataclass
class JudgmentResult:
    """One judgment: the reply, the ability it states, whether it was parseable, and P(yes)."""

    text: str
    predicted: Ability
    parsed: bool
    p_yes: float


def judgment_token_ids(tokenizer) -> tuple[int, int]:
    """Ids of the ``yes`` and ``no`` tokens as upstream picks them (last token of each encoded word)."""
    return (
        tokenizer.encode("yes", add_special_tokens=False)[-1],
        tokenizer.encode("no", add_special_tokens=False)[-1],
    )


class _StepLogits:
    """Forward hook on the LM head keeping the last-position logits of two ids at every decoding step.

    Calls with another row count (the shared-prefix prefill of the prefix cache) are skipped.
    """

    def __init__(self, ids: tuple[int, int], rows: int):
        self.ids, self.rows = list(ids), rows
        self.steps: list[Tensor] = []

    def __call__(self, module, inputs, output):
        if output.shape[0] == self.rows:
            self.steps.append(output[:, -1, self.ids].float().cpu())


def first_yes_no_probability(
    completion_ids: Sequence[Sequence[int]], step_logits: Sequence[Tensor], yes_id: int, no_id: int
) -> list[float]:
    """Per row, softmax over [yes, no] logits at the first generated yes/no token (0.5 if none)."""
    out = []
    for row, ids in enumerate(completion_ids):
        p = 0.5
        for step, token in enumerate(ids):
            if token in (yes_id, no_id) and step < len(step_logits):
                p = float(torch.softmax(step_logits[step][row], -1)[0])
                break
        out.append(p)
    return out


def judgment_prompts(
    tokenizer, records: Sequence[QARecord], label_mode: LabelMode, settings: JudgmentSettings
) -> list[Prompt]:
    """The rendered judgment prompt (system + user turn) of each record."""
    from metalight.models.chat import render_prompt

    out = []
    for record in records:
        context = record.context if settings.with_context else None
        system, user = judgment_prompt(record.question, label_mode, context)
        out.append(Prompt(*render_prompt(tokenizer, user, settings.chat_template, system)))
    return out


@torch.no_grad()
def ask_judgments(
    model,
    tokenizer,
    records: Sequence[QARecord],
    label_mode: LabelMode = "binary",
    settings: JudgmentSettings | None = None,
    synced_gpus: bool = False,
) -> list[JudgmentResult]:
    """Ask each record's judgment greedily; parse it and score P(yes) (see module docstring; ``settings``:
    default ``JudgmentSettings()``)."""
    settings = JudgmentSettings() if settings is None else settings
    yes_id, no_id = judgment_token_ids(tokenizer)
    decoding = Decoding(max_new_tokens=settings.max_new_tokens, strategy="greedy")
    results: list[JudgmentResult] = []
    with eval_mode(model):
        for start in range(0, len(records), settings.batch_size):
            chunk = records[start : start + settings.batch_size]
            hook = _StepLogits((yes_id, no_id), len(chunk))
            handle = model.get_output_embeddings().register_forward_hook(hook)
            try:
                prompts = judgment_prompts(tokenizer, chunk, label_mode, settings)
                out = generate(
                    model, tokenizer, prompts, decoding, settings.max_input_tokens, synced_gpus=synced_gpus
                )
            finally:
                handle.remove()
            p_yes = first_yes_no_probability(out.completion_ids, hook.steps, yes_id, no_id)
            for text, p in zip(out.texts, p_yes):
                predicted, parsed = parse_judgment(text, label_mode)
                results.append(JudgmentResult(text, predicted, parsed, p))
    return results
