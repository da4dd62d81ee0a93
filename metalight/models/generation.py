"""Batched generation, first-token yes/no probability, and per-token scores of given completions.

All functions take already-rendered :class:`Prompt` s (see :func:`metalight.models.chat.render_prompt`),
left-pad them together (so chat-templated and raw prompts can share one batch), and keep the *end* of a
prompt longer than ``max_input_tokens`` (the question and the assistant header live there); with
``truncation_side="right"`` they keep its start instead (Hugging Face's default, e.g. upstream ESMA's
``truncation=True``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from metalight.models.bucketed_prefill import prefill
from metalight.models.decoding import Decoder, Decoding, DecodingStrategy, Generation, stop_token_ids
from metalight.models.padding import left_pad, position_ids
from metalight.models.prefix_cache import prepare_batch
from metalight.models.row_decoding import decode_rows


@dataclass(frozen=True)
class Prompt:
    """Model input text; ``templated`` means it came from a chat template (no special tokens are added)."""

    text: str
    templated: bool = False


def model_device(model) -> torch.device:
    """Device of the model's first parameter."""
    return next(model.parameters()).device


TruncationSide = Literal["left", "right"]
"""Which end of a prompt longer than the input budget is cut: ``left`` keeps the last tokens, ``right`` the
first ones (Hugging Face's ``truncation_side``)."""


def encode_prompts(
    tokenizer,
    prompts: Sequence[Prompt],
    max_input_tokens: int | None = None,
    truncation_side: TruncationSide = "left",
) -> list[list[int]]:
    """Token ids per prompt; a prompt longer than ``max_input_tokens`` keeps its last tokens (``left``) or its
    first ones (``right``)."""
    out = []
    for prompt in prompts:
        ids = tokenizer(prompt.text, add_special_tokens=not prompt.templated)["input_ids"]
        out.append(truncate(ids, max_input_tokens, truncation_side))
    return out


def truncate(ids: list[int], max_tokens: int | None, side: TruncationSide = "left") -> list[int]:
    """``ids`` cut to ``max_tokens`` (``None``: unchanged) from the ``side`` given."""
    if not max_tokens or len(ids) <= max_tokens:
        return ids
    if side == "right":
        return ids[:max_tokens]
    if side == "left":
        return ids[-max_tokens:]
    raise ValueError(f"truncation_side must be left or right, got {side!r}")


def generation_config(model, tokenizer, decoding: Decoding):
    """A ``GenerationConfig`` that states the decoding explicitly instead of inheriting the model's."""
    from transformers import GenerationConfig

    common = {
        "max_new_tokens": decoding.max_new_tokens,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": stop_token_ids(model, tokenizer),
    }
    if decoding.strategy == "model_default":
        config = GenerationConfig.from_dict(model.generation_config.to_dict())
        config.update(**common)
        return config
    if decoding.strategy == "greedy":
        return GenerationConfig(do_sample=False, **common)
    return GenerationConfig(
        do_sample=True, temperature=decoding.temperature, top_p=decoding.top_p, top_k=0, **common
    )


class _FirstStepLogits:
    """Forward hook on the output embedding that keeps the first call's last-position logits of ``ids``."""

    def __init__(self, ids: Sequence[int]):
        self.ids = list(ids)
        self.logits: Tensor | None = None

    def __call__(self, module, inputs, output):
        if self.logits is None:
            self.logits = output[:, -1, self.ids].float().clone()


def resolve_decoder(
    decoder: Decoder, strategy: DecodingStrategy, synced_gpus: bool = False
) -> Literal["compact", "hf"]:
    """The decoder ``generate`` runs (see its docstring); raises ``ValueError`` for ``compact`` with a
    decoding or a lock-step setting it cannot run."""
    if decoder == "hf":
        return "hf"
    if decoder == "auto":
        return "hf" if strategy == "model_default" or synced_gpus else "compact"
    if decoder != "compact":
        raise ValueError(f"unknown decoder {decoder!r}; use auto, compact or hf")
    if strategy == "model_default":
        raise ValueError(
            "decoder: compact decodes greedy or sample only; decoding: model_default (the model's own "
            "generation_config) needs decoder: hf (or auto)"
        )
    if synced_gpus:
        raise ValueError(
            "decoder: compact cannot generate in lock step across ranks of a sharded model "
            "(FSDP / ZeRO-3): use decoder: hf (or auto)"
        )
    return "compact"


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: Sequence[Prompt],
    decoding: Decoding | None = None,
    max_input_tokens: int | None = 128,
    num_return_sequences: int = 1,
    capture_token_ids: Sequence[int] | None = None,
    synced_gpus: bool = False,
    prefix_cache: bool = True,
    decoder: Decoder = "auto",
    truncation_side: TruncationSide = "left",
) -> Generation:
    """Generate for all prompts in one batched call; rows are ordered prompt-major, then sample.

    ``capture_token_ids`` returns the first generated position's raw logits of those ids (e.g. yes/no
    variants) at no extra cost: the prefill computes them anyway. ``prefix_cache`` prefills prompt prefixes
    shared by many rows once (see :mod:`metalight.models.prefix_cache`), and rows of similar length are
    prefilled together (:mod:`metalight.models.bucketed_prefill`); results are unchanged.
    ``decoder``: ``compact`` drops finished rows from the batch (:mod:`metalight.models.row_decoding`),
    ``hf`` runs ``model.generate``; ``auto`` picks ``compact`` unless the decoding is ``model_default`` or
    ranks generate in lock step (``synced_gpus``), which only ``hf`` supports. ``decoding`` defaults to
    ``Decoding()`` (greedy). ``truncation_side``: see :func:`encode_prompts`.
    """
    if not prompts:
        return Generation([], [], [], None)
    decoding = Decoding() if decoding is None else decoding
    rows = [
        ids
        for ids in encode_prompts(tokenizer, prompts, max_input_tokens, truncation_side)
        for _ in range(num_return_sequences)
    ]
    if resolve_decoder(decoder, decoding.strategy, synced_gpus) == "compact":
        return decode_rows(model, tokenizer, rows, decoding, capture_token_ids, prefix_cache=prefix_cache)
    batch = prepare_batch(model, rows, tokenizer.pad_token_id, enabled=prefix_cache and not synced_gpus)
    # Ranks generating in lock step must run the same forwards: no buckets there.
    _, cache = prefill(model, batch, leave_last=True, buckets=not synced_gpus)
    hook = handle = None
    if capture_token_ids is not None:
        hook = _FirstStepLogits(capture_token_ids)
        handle = model.get_output_embeddings().register_forward_hook(hook)
    try:
        extra = {"cache": cache} if cache is not None else {}
        output = model.generate(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            generation_config=generation_config(model, tokenizer, decoding),
            synced_gpus=synced_gpus,
            **extra,
        )
    finally:
        if handle is not None:
            handle.remove()
    completions = output[:, batch.input_ids.shape[1] :].tolist()
    stops = set(stop_token_ids(model, tokenizer)) | {tokenizer.pad_token_id}
    trimmed = [_until_stop(row, stops) for row in completions]
    texts = [t.strip() for t in tokenizer.batch_decode(trimmed, skip_special_tokens=True)]
    stop_ids = [row[len(t)] if len(t) < len(row) else None for row, t in zip(completions, trimmed)]
    return Generation(
        texts, [len(t) for t in trimmed], trimmed, hook.logits if hook is not None else None, stop_ids
    )


def _until_stop(ids: list[int], stops: set[int]) -> list[int]:
    for i, token in enumerate(ids):
        if token in stops:
            return ids[:i]
    return ids


def yes_no_token_ids(tokenizer, yes_word: str = "Yes", no_word: str = "No") -> tuple[list[int], list[int]]:
    """Single-token variants of the yes and no words (case and leading-space variants), deduplicated."""

    def variants(word: str) -> list[int]:
        ids: list[int] = []
        for form in dict.fromkeys([word, word.lower(), word.capitalize(), word.upper()]):
            for text in (form, " " + form):
                encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
                if len(encoded) == 1 and encoded[0] not in ids:
                    ids.append(encoded[0])
        return ids

    yes, no = variants(yes_word), variants(no_word)
    if not yes or not no:
        raise ValueError(
            f"the tokenizer has no single-token form of {yes_word!r} or {no_word!r}; the first-token "
            f"yes/no probability needs one (use meta_readout='generate')"
        )
    return yes, no


def p_yes_from_logits(logits: Tensor, num_yes: int) -> Tensor:
    """P(yes) = Σp(yes variants) / (Σp(yes variants) + Σp(no variants)) from [rows, yes+no] logits."""
    logits = logits.float()
    return torch.sigmoid(torch.logsumexp(logits[:, :num_yes], -1) - torch.logsumexp(logits[:, num_yes:], -1))


@torch.no_grad()
def yes_probability(
    model,
    tokenizer,
    prompts: Sequence[Prompt],
    yes_ids: Sequence[int],
    no_ids: Sequence[int],
    max_input_tokens: int | None = 128,
    prefix_cache: bool = True,
    synced_gpus: bool = False,
    truncation_side: TruncationSide = "left",
) -> Tensor:
    """P(yes) of the first answer token after each prompt, from one prefill (ESMA's threshold eval).

    ``synced_gpus``: ranks of a sharded model run the same single forward (no prefix cache, no buckets).
    """
    batch = prepare_batch(
        model,
        encode_prompts(tokenizer, prompts, max_input_tokens, truncation_side),
        tokenizer.pad_token_id,
        enabled=prefix_cache and not synced_gpus,
    )
    logits, _ = prefill(model, batch, buckets=not synced_gpus, need_cache=False)
    return p_yes_from_logits(logits[:, list(yes_ids) + list(no_ids)], len(yes_ids)).cpu()


@dataclass
class TokenScores:
    """Per chosen token of each completion: its log-probability and the entropy of the next-token
    distribution it was drawn from, both in nats, under the model's raw (untempered) distribution."""

    logprobs: list[list[float]]
    entropies: list[list[float]]


@torch.no_grad()
def completion_token_scores(
    model,
    tokenizer,
    prompts: Sequence[Prompt],
    completion_ids: Sequence[Sequence[int]],
    max_input_tokens: int | None = 128,
    batch_size: int = 16,
    truncation_side: TruncationSide = "left",
) -> TokenScores:
    """Score given completions (e.g. :meth:`Generation.generated_ids`, stop token included) by one
    teacher-forced forward pass per ``batch_size`` rows; prompts are truncated as in :func:`generate`.
    The sequence log-probability is ``sum(logprobs[i])``; LM-Polygraph's MaximumSequenceProbability and
    MeanTokenEntropy read exactly these per-token values."""
    if len(prompts) != len(completion_ids):
        raise ValueError(f"{len(prompts)} prompts but {len(completion_ids)} completions")
    prompt_ids = encode_prompts(tokenizer, prompts, max_input_tokens, truncation_side)
    logprobs: list[list[float]] = []
    entropies: list[list[float]] = []
    for start in range(0, len(prompt_ids), batch_size):
        chunk = [list(c) for c in completion_ids[start : start + batch_size]]
        width = max(len(c) for c in chunk)
        if width == 0:
            logprobs += [[] for _ in chunk]
            entropies += [[] for _ in chunk]
            continue
        rows = [p + c for p, c in zip(prompt_ids[start : start + batch_size], chunk)]
        input_ids, attention_mask = left_pad(rows, tokenizer.pad_token_id, model_device(model))
        # The last `width + 1` positions predict the last `width` tokens, which hold every completion.
        logits = (
            model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids(attention_mask),
                logits_to_keep=width + 1,
            )
            .logits[:, :-1]
            .float()
        )
        log_p = torch.log_softmax(logits, -1)
        entropy = -(log_p.exp() * log_p).sum(-1)
        chosen = log_p.gather(-1, input_ids[:, -width:, None]).squeeze(-1)
        for row, completion in enumerate(chunk):
            keep = slice(width - len(completion), width)
            logprobs.append(chosen[row, keep].tolist())
            entropies.append(entropy[row, keep].tolist())
    return TokenScores(logprobs, entropies)
