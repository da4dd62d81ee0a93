"""Residual-stream features: hidden states at chosen layers, pooled over a chosen token span.

Layer ``l`` is the output of transformer block ``l``, i.e. HF ``hidden_states[l + 1]`` (index 0 is the
embeddings; for the last block HF returns the final-norm output, and so do we). States are read with forward
hooks on the blocks, and the forward pass stops after the deepest requested layer (no LM head, no later
blocks), so extraction costs at most one plain forward. Spans (all in the model's own token positions, left
padding skipped through the attention mask and per-row position ids):

* ``response``        mean over the assistant response tokens (upstream ``last_assistant_to_eos_mean``);
* ``response_to_end`` mean from the response's first token to the sequence end (upstream's span for models
                      whose EOS tag is not found, e.g. Llama-3: it includes the end-of-turn token);
* ``last``            the last token;  ``all``  the mean over all tokens.

:func:`extract_token_rows` keeps every response token as its own row instead of pooling (upstream
``last_assistant_to_eos_each``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from metalight.errors import ConfigError, DataError
from metalight.models.chat import has_chat_template
from metalight.models.generation import model_device
from metalight.models.padding import left_pad, position_ids
from metalight.models.prefix_cache import prepare_batch

Span = Literal["response", "response_to_end", "last", "all"]
SPANS: tuple[str, ...] = ("response", "response_to_end", "last", "all")


@dataclass(frozen=True)
class SpanText:
    """Model input ``text`` whose assistant response occupies characters ``[start, end)``;
    ``templated``: it came from a chat template (no special tokens are added when tokenizing)."""

    text: str
    start: int
    end: int
    templated: bool = True


def chat_span_text(
    tokenizer, messages: Sequence[dict[str, str]], response: str, close_turn: bool = True
) -> SpanText:
    """Render ``messages`` plus a final assistant ``response`` and locate the response in the text.

    ``close_turn=False`` leaves the assistant turn open (``continue_final_message``), as upstream renders
    the chats of its report and control experiments. Without a chat template the turns are joined as raw text.
    """
    response = response.strip()
    if not response:
        raise DataError("an empty assistant response has no tokens to pool; drop or fix that example")
    if has_chat_template(tokenizer):
        full = list(messages) + [{"role": "assistant", "content": response}]
        text = tokenizer.apply_chat_template(
            full, tokenize=False, add_generation_prompt=False, continue_final_message=not close_turn
        )
        templated = True
    else:
        text = "\n\n".join(m["content"] for m in messages) + "\n\n" + response
        templated = False
    start = text.rfind(response)
    if start < 0:
        name = getattr(tokenizer, "name_or_path", "the tokenizer")
        raise ConfigError(
            f"the chat template of {name} rewrites the assistant message, so its tokens cannot "
            f"be located; use span='last' or 'all'"
        )
    return SpanText(text, start, start + len(response), templated)


def statement_span_text(tokenizer, user_prompt: str, response: str, system: str | None) -> SpanText:
    """Upstream's ``_format_chat_prompt``: system, user prompt, the statement as the assistant's reply."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": user_prompt})
    return chat_span_text(tokenizer, messages, response)


def encode_with_span(tokenizer, item: SpanText) -> tuple[list[int], int, int]:
    """Token ids and the token range ``[first, stop)`` covering the response characters."""
    enc = tokenizer(item.text, add_special_tokens=not item.templated, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    inside = [i for i, (a, b) in enumerate(offsets) if b > a and a < item.end and b > item.start]
    if not inside:
        raise DataError(f"no token covers the response {item.text[item.start : item.end][:60]!r}")
    return ids, inside[0], inside[-1] + 1


def decoder_blocks(model) -> nn.ModuleList:
    """The model's list of transformer blocks (Llama/Qwen/Mistral/Gemma ``model.layers``, GPT-2 ``h``)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    for name in ("layers", "h", "blocks"):
        blocks = getattr(decoder, name, None)
        if isinstance(blocks, nn.ModuleList):
            return blocks
    raise ConfigError(
        f"{type(model).__name__}: no list of transformer blocks found (looked for layers, h, "
        f"blocks); activation probes support decoder-only HF models"
    )


def final_norm(model) -> nn.Module | None:
    """The norm applied after the last block (HF returns its output as the last hidden state)."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else model
    for name in ("norm", "ln_f", "final_layernorm"):
        module = getattr(decoder, name, None)
        if isinstance(module, nn.Module):
            return module
    return None


def check_layers(model, layers: Sequence[int]) -> list[int]:
    """Validate layer indices against the model's block count (``ConfigError`` naming the valid range)."""
    n = len(decoder_blocks(model))
    bad = [layer for layer in layers if not isinstance(layer, int) or not 0 <= layer < n]
    if bad or not layers:
        raise ConfigError(
            f"layers {list(bad or layers)} out of range: this model has {n} blocks, so layers "
            f"must be in 0..{n - 1} (layer l = HF hidden_states[l + 1])"
        )
    return sorted(set(layers))


class _Stop(Exception):
    """Raised by the capture hook after the deepest requested layer: the rest of the forward is not needed."""


@contextmanager
def capture_layers(
    model, layers: Sequence[int], stop: bool = True, reduce: Callable[[Tensor], Tensor] | None = None
) -> Iterator[dict[int, Tensor]]:
    """Hooks that store each requested layer's output ``[batch, seq, hidden]`` (or ``reduce`` of it, applied
    inside the hook so the full states are not kept) in the yielded dict.

    With ``stop`` the forward is cut short after the deepest layer; wrap the call in :func:`run_to_capture`.
    """
    layers = check_layers(model, layers)
    blocks, norm = decoder_blocks(model), final_norm(model)
    captured: dict[int, Tensor] = {}
    deepest = max(layers)

    def hook_for(layer: int):
        def hook(module, inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            captured[layer] = reduce(hidden) if reduce is not None else hidden
            if stop and layer == deepest:
                raise _Stop

        return hook

    handles = []
    for layer in layers:
        last = layer == len(blocks) - 1 and norm is not None
        handles.append((norm if last else blocks[layer]).register_forward_hook(hook_for(layer)))
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def run_to_capture(model, **inputs) -> None:
    """Run ``model(**inputs)`` under :func:`capture_layers`, swallowing the early stop."""
    inputs.setdefault("use_cache", inputs.get("cache") is not None)
    with suppress(_Stop):
        model(**inputs)


def span_weights(attention_mask: Tensor, spans: Sequence[tuple[int, int]], span: Span) -> Tensor:
    """Pooling weights ``[rows, width]`` (each row sums to 1) over left-padded rows; ``spans`` are per-row
    ``(first, stop)`` token indices of the response in the unpadded sequence."""
    rows, width = attention_mask.shape
    weights = torch.zeros(rows, width)
    lengths = attention_mask.sum(-1).tolist()
    for row, (first, stop) in enumerate(spans):
        pad = width - int(lengths[row])
        start, end = {
            "last": (width - 1, width),
            "all": (pad, width),
            "response": (pad + first, pad + stop),
            "response_to_end": (pad + first, width),
        }[span]
        weights[row, start:end] = 1.0 / (end - start)
    return weights.to(attention_mask.device)


@torch.no_grad()
def extract_features(
    model,
    tokenizer,
    items: Sequence[SpanText],
    layers: Sequence[int],
    span: Span = "response",
    batch_size: int = 16,
    max_tokens: int | None = None,
    prefix_cache: bool = False,
) -> dict[int, Tensor]:
    """Pooled residual-stream features ``{layer: float32 [len(items), hidden]}`` (CPU), rows in input order.

    Rows are batched by length (less padding); ``max_tokens`` keeps the last tokens of a longer input.
    ``prefix_cache`` prefills token prefixes shared by a batch's rows once
    (:mod:`metalight.models.prefix_cache`) and runs only the rest, when the pooled span lies in that rest:
    for long chats that differ only in their last turns (the control experiment). Features are the same
    either way (tested).
    """
    if span not in SPANS:
        raise ConfigError(f"span {span!r} is not one of {SPANS}")
    layers = check_layers(model, layers)
    encoded = [_truncate(*encode_with_span(tokenizer, item), max_tokens, span) for item in items]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
    out: dict[int, Tensor] = {}
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        pooled = _extract_batch(
            model, tokenizer, [encoded[i] for i in rows], layers, span, prefix_cache and span != "all"
        )
        index = torch.as_tensor(rows)
        for layer, values in pooled.items():
            out.setdefault(layer, torch.empty(len(items), values.shape[-1]))[index] = values
    return out


@dataclass(frozen=True)
class TokenRows:
    """Per-token features: ``features[layer]`` float32 ``[tokens, hidden]`` (CPU), one row per response token
    in item order; ``item[t]`` the input index and ``token_id[t]`` the token id of row t."""

    features: dict[int, Tensor]
    item: Tensor
    token_id: Tensor


@torch.no_grad()
def extract_token_rows(
    model,
    tokenizer,
    items: Sequence[SpanText],
    layers: Sequence[int],
    batch_size: int = 16,
    max_tokens: int | None = None,
) -> TokenRows:
    """Every assistant-response token's residual state at ``layers`` as its own row (upstream
    ``last_assistant_to_eos_each``); the mean of an item's rows is its ``response`` feature."""
    layers = check_layers(model, layers)
    encoded = [_truncate(*encode_with_span(tokenizer, item), max_tokens, "response") for item in items]
    device = model_device(model)
    chunks: dict[int, list[Tensor]] = {layer: [] for layer in layers}
    owners: list[int] = []
    token_ids: list[int] = []
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start : start + batch_size]
        input_ids, mask = left_pad([ids for ids, _, _ in batch], tokenizer.pad_token_id, device)
        pads = (mask.shape[1] - mask.sum(-1)).tolist()
        rows, cols = [], []
        for r, ((ids, first, stop), pad) in enumerate(zip(batch, pads)):
            rows += [r] * (stop - first)
            cols += range(int(pad) + first, int(pad) + stop)
            owners += [start + r] * (stop - first)
            token_ids += ids[first:stop]
        rows_t, cols_t = torch.tensor(rows, device=device), torch.tensor(cols, device=device)

        def gather(hidden: Tensor, rows_t: Tensor = rows_t, cols_t: Tensor = cols_t) -> Tensor:
            return hidden[rows_t, cols_t].float()

        with capture_layers(model, layers, reduce=gather) as captured:
            run_to_capture(model, input_ids=input_ids, attention_mask=mask, position_ids=position_ids(mask))
        for layer in layers:
            chunks[layer].append(captured[layer].cpu())
    return TokenRows(
        {layer: torch.cat(chunks[layer]) for layer in layers}, torch.tensor(owners), torch.tensor(token_ids)
    )


def _truncate(
    ids: list[int], first: int, stop: int, max_tokens: int | None, span: Span
) -> tuple[list[int], int, int]:
    if not max_tokens or len(ids) <= max_tokens:
        return ids, first, stop
    cut = len(ids) - max_tokens
    if first < cut and span in ("response", "response_to_end"):
        raise DataError(
            f"an input of {len(ids)} tokens cuts into its response at max_tokens={max_tokens}; "
            f"raise max_tokens"
        )
    return ids[cut:], first - cut, stop - cut


def _extract_batch(
    model,
    tokenizer,
    encoded: list[tuple[list[int], int, int]],
    layers: list[int],
    span: Span,
    prefix_cache: bool,
) -> dict[int, Tensor]:
    device = model_device(model)
    spans = [(first, stop) for _, first, stop in encoded]
    if prefix_cache:
        batch = prepare_batch(model, [ids for ids, _, _ in encoded], tokenizer.pad_token_id)
        cached = None if batch.cache is None else batch.attention_mask[:, : batch.prefix_len].sum(-1).tolist()
        if cached is not None and all(first >= k for (first, _), k in zip(spans, cached)):
            shifted = [(first - k, stop - k) for (first, stop), k in zip(spans, cached)]
            weights = span_weights(batch.attention_mask[:, batch.prefix_len :], shifted, span)
            return _run_pooled(
                model,
                layers,
                weights,
                input_ids=batch.new_input_ids,
                attention_mask=batch.attention_mask,
                position_ids=batch.position_ids(),
                cache=batch.cache,
            )
    input_ids, mask = left_pad([ids for ids, _, _ in encoded], tokenizer.pad_token_id, device)
    return _run_pooled(
        model,
        layers,
        span_weights(mask, spans, span),
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids(mask),
    )


def _run_pooled(model, layers: list[int], weights: Tensor, **inputs) -> dict[int, Tensor]:
    def reduce(hidden: Tensor) -> Tensor:
        return torch.einsum("bw,bwd->bd", weights, hidden.float())  # a no-op cast for float32 models

    with capture_layers(model, layers, reduce=reduce) as captured:
        run_to_capture(model, **inputs)
    return {layer: captured[layer].cpu() for layer in layers}
