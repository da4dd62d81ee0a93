"""Report experiment (upstream ``main_predexp.py`` → ``neurofeedback.py::predict_score_by_examples``).

Can a model *report* its own activation along an axis? All held-out examples are shuffled into one chat:
system ``predict_binary``, then per example the user prompt and ``{response} [Score: {label}]`` with the
example's neural label on that (layer, axis). One forward pass reads, at every label, the logits of "0" and
"1" just before it: prediction = argmax, logit difference = logit(1) − logit(0). Example i is predicted from
the i − 1 labelled examples before it, so accuracy and cross-entropy by position form a learning curve.

Cross-setting prediction (``predexp``) is the same measurement with the labels of one probe run (config S:
model, layer, axis) shown to another model (config E).
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from metalight.errors import ConfigError
from metalight.methods.probes.experiments.common import Example, ProbeRun
from metalight.models.chat import has_chat_template
from metalight.models.generation import model_device
from metalight.prompts import NF_PREDICT_BINARY, nf_scored_response

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledChat:
    """A chat-rendered ``text`` whose label digits sit at characters ``label_chars``."""

    text: str
    label_chars: list[int]


def nf_messages(
    system: str, turns: Sequence[tuple[str, str, int]], final_user: str | None = None
) -> list[dict[str, str]]:
    """System, then per ``(user_prompt, response, label)`` a user turn and ``{response} [Score: {label}]``,
    then an optional final user turn."""
    messages = [{"role": "system", "content": system}]
    for user, response, label in turns:
        messages += [
            {"role": "user", "content": user},
            {"role": "assistant", "content": nf_scored_response(response, label)},
        ]
    if final_user is not None:
        messages.append({"role": "user", "content": final_user})
    return messages


def require_chat_template(tokenizer) -> None:
    """``ConfigError`` for a tokenizer without a chat template (the experiments are multi-turn chats)."""
    if not has_chat_template(tokenizer):
        raise ConfigError(
            f"{getattr(tokenizer, 'name_or_path', 'the model')} has no chat template; the "
            f"neurofeedback experiments are multi-turn chats and need an instruct model"
        )


def labelled_chat(tokenizer, system: str, turns: Sequence[tuple[str, str, int]]) -> LabelledChat:
    """Render system + ``(user_prompt, response, label)`` turns with the last assistant turn left open (as
    upstream: ``continue_final_message``) and locate each label digit."""
    require_chat_template(tokenizer)
    text = tokenizer.apply_chat_template(
        nf_messages(system, turns), tokenize=False, continue_final_message=True
    )
    chars, cursor = [], 0
    for _, response, label in turns:
        content = nf_scored_response(response, label)
        position = text.find(content, cursor)
        if position < 0:
            raise ConfigError("the chat template rewrites assistant messages, so labels cannot be located")
        chars.append(position + content.rindex(f"{{{label}}}") + 1)  # the digit in "... [Score: {1}]"
        cursor = position + len(content)
    return LabelledChat(text, chars)


def digit_ids(tokenizer) -> tuple[int, int]:
    """Token ids of "0" and "1" (each must be a single token)."""
    ids = [tokenizer(d, add_special_tokens=False)["input_ids"] for d in ("0", "1")]
    if any(len(i) != 1 for i in ids) or ids[0] == ids[1]:
        raise ConfigError("the tokenizer has no single-token '0' and '1'; the report read-out needs them")
    return ids[0][0], ids[1][0]


def label_positions(tokenizer, chat: LabelledChat) -> tuple[list[int], list[int]]:
    """Token ids of the chat and the token index of every label digit (``ConfigError`` if a digit is merged
    with its neighbours into one token)."""
    enc = tokenizer(chat.text, add_special_tokens=False, return_offsets_mapping=True)
    start_of = {a: i for i, (a, b) in enumerate(enc["offset_mapping"]) if b == a + 1}
    missing = [c for c in chat.label_chars if c not in start_of]
    if missing:
        raise ConfigError(
            f"the tokenizer merges the label digit at character {missing[0]} with its "
            f"neighbours; the one-pass read-out needs '0' and '1' as separate tokens"
        )
    return enc["input_ids"], [start_of[c] for c in chat.label_chars]


@torch.no_grad()
def label_logit_diffs(model, ids: list[int], positions: list[int], zero: int, one: int) -> torch.Tensor:
    """logit("1") − logit("0") predicting each label token, from one forward pass (only those positions
    go through the LM head)."""
    limit = getattr(model.config, "max_position_embeddings", None)
    if limit and len(ids) > limit:
        raise ConfigError(
            f"the report chat has {len(ids)} tokens, more than the model's {limit}; lower --max-examples"
        )
    device = model_device(model)
    keep = torch.tensor([p - 1 for p in positions], device=device)
    logits = model(input_ids=torch.tensor([ids], device=device), logits_to_keep=keep, use_cache=False).logits[
        0
    ]
    return (logits[:, one] - logits[:, zero]).float().cpu()


def summarise(diffs: torch.Tensor, truth: torch.Tensor) -> dict[str, Any]:
    """Accuracy and cross-entropy (nats) overall, in the second half and by position (``[shuffles, n]``)."""
    correct = ((diffs > 0).long() == truth).float()
    ce = F.binary_cross_entropy_with_logits(diffs, truth.float(), reduction="none")
    half = truth.shape[1] // 2
    p1 = truth.float().mean().item()
    return {
        "accuracy": correct.mean().item(),
        "accuracy_late": correct[:, half:].mean().item(),
        "cross_entropy": ce.mean().item(),
        "cross_entropy_late": ce[:, half:].mean().item(),
        "label_1_rate": p1,
        "majority_baseline": max(p1, 1 - p1),
        "entropy_baseline": 0.0 if p1 in (0.0, 1.0) else -(p1 * math.log(p1) + (1 - p1) * math.log(1 - p1)),
        "curve": {"accuracy": correct.mean(0).tolist(), "cross_entropy": ce.mean(0).tolist()},
    }


def run_report(
    model,
    tokenizer,
    run: ProbeRun,
    configs: Sequence[tuple[int, str]],
    shuffles: int = 10,
    seed: int = 42,
    max_examples: int | None = None,
) -> list[dict[str, Any]]:
    """The report experiment for each ``(layer, axis)`` of ``run``'s labels, read by ``model``.

    Shuffle s orders the examples with ``random.Random(seed + s)`` (and keeps the first ``max_examples``).
    Returns one result per config: :func:`summarise` plus ``layer``, ``axis``, ``n_examples``.
    """
    zero, one = digit_ids(tokenizer)
    n = min(len(run.examples), max_examples or len(run.examples))
    orders = [
        random.Random(seed + s).sample(range(len(run.examples)), len(run.examples))[:n]
        for s in range(shuffles)
    ]
    results = []
    for layer, axis in configs:
        labels = run.neural_labels(layer, axis)
        diffs, truth = [], []
        for order in orders:
            shown: list[Example] = [run.examples[i] for i in order]
            turns = [(e.user_prompt, e.response, labels[i]) for e, i in zip(shown, order)]
            chat = labelled_chat(tokenizer, NF_PREDICT_BINARY, turns)
            ids, positions = label_positions(tokenizer, chat)
            diffs.append(label_logit_diffs(model, ids, positions, zero, one))
            truth.append(torch.tensor([labels[i] for i in order]))
        result = {
            "layer": layer,
            "axis": axis,
            "n_examples": n,
            "shuffles": shuffles,
            **summarise(torch.stack(diffs), torch.stack(truth)),
        }
        log.info(
            "report layer %d %s: accuracy %.3f (late %.3f, majority %.3f)",
            layer,
            axis,
            result["accuracy"],
            result["accuracy_late"],
            result["majority_baseline"],
        )
        results.append(result)
    return results
