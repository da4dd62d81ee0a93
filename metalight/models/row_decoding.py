"""Greedy (or sampling) decoding that drops finished rows: the default decoder of
:func:`metalight.models.generation.generate` and of the ES population evaluation.

``model.generate`` keeps every row in the batch until the longest answer ends. Here a row leaves the batch
(and the KV cache) as soon as it emits a stop token, and the loop ends when no row is left, so short meta
answers stop costing compute after their last token. Every forward pass runs inside ``row_context(rows)``,
which receives the original indices of the rows it contains (the prefill runs rows of similar length
together, :mod:`metalight.models.bucketed_prefill`) — how the per-row low-rank perturbation
(:mod:`metalight.methods.esma.lowrank_forward`) keeps each row's member through prefix caching and compaction.
Rows with different ``row_keys`` never share a cached prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

from metalight.models.bucketed_prefill import prefill
from metalight.models.decoding import Decoding, Generation, stop_token_ids
from metalight.models.prefix_cache import prepare_batch

RowContext = Callable[[Tensor], AbstractContextManager]

# Compacting copies the whole KV cache: do it once enough rows have finished to pay for the copy.
COMPACT_FRACTION = 0.125


def _no_context(rows: Tensor) -> AbstractContextManager:
    return nullcontext()


def next_tokens(logits: Tensor, decoding: Decoding, generator: torch.Generator | None) -> Tensor:
    """Each row's next token from its logits [rows, vocab]: the argmax (greedy) or a sample."""
    if decoding.strategy == "greedy":
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / max(decoding.temperature, 1e-6), -1)
    if decoding.top_p < 1.0:
        sorted_probs, order = probs.sort(-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > decoding.top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def _prepared(model, tokenizer, rows, context: RowContext, prefix_cache: bool, row_keys):
    """The rows as one left-padded batch (shared prefixes cached when ``prefix_cache``), each prefill of a
    group of rows run inside ``context`` of those rows' indices."""
    device = next(model.parameters()).device
    return prepare_batch(
        model,
        rows,
        tokenizer.pad_token_id,
        enabled=prefix_cache,
        row_keys=row_keys,
        prefill_context=lambda first: context(torch.as_tensor(first, device=device)),
    )


@torch.no_grad()
def decode_rows(
    model,
    tokenizer,
    rows: Sequence[Sequence[int]],
    decoding: Decoding | None = None,
    capture_token_ids: Sequence[int] | None = None,
    row_keys: Sequence[Hashable] | None = None,
    row_context: RowContext | None = None,
    prefix_cache: bool = True,
    generator: torch.Generator | None = None,
    length_buckets: bool = True,
) -> Generation:
    """Decode every token-id row; returns texts, token counts, completion ids, the stop token that ended
    each row (``None``: it ran out of ``max_new_tokens``), and (if asked) the first position's raw logits of
    ``capture_token_ids`` ([rows, len(ids)]). ``decoding.strategy`` must be
    ``greedy`` or ``sample``. ``length_buckets``: prefill rows of similar length together
    (:mod:`metalight.models.bucketed_prefill`) instead of in one padded forward. ``decoding`` defaults to
    ``Decoding()`` (greedy)."""
    decoding = Decoding() if decoding is None else decoding
    if decoding.strategy not in ("greedy", "sample"):
        raise ValueError(f"decode_rows supports greedy and sample decoding, not {decoding.strategy!r}")
    if not rows:
        return Generation([], [], [], None)
    context = row_context or _no_context
    device = next(model.parameters()).device
    batch = _prepared(model, tokenizer, rows, context, prefix_cache, row_keys)
    alive = torch.arange(len(rows), device=device)
    mask = batch.attention_mask
    logits, cache = prefill(model, batch, row_context=context, buckets=length_buckets)
    captured = logits[:, list(capture_token_ids)].float().clone() if capture_token_ids is not None else None
    stops = torch.tensor(sorted(set(stop_token_ids(model, tokenizer))), device=device)
    completions: list[list[int]] = [[] for _ in rows]
    stopped_by: list[int | None] = [None] * len(rows)
    finished = torch.zeros(len(rows), dtype=torch.bool, device=device)
    for step in range(decoding.max_new_tokens):
        tokens = next_tokens(logits, decoding, generator)
        done = torch.isin(tokens, stops)
        for row, token, stop, was_done in zip(
            alive.tolist(), tokens.tolist(), done.tolist(), finished.tolist()
        ):
            if not (stop or was_done):
                completions[row].append(token)
            elif stop and not was_done:
                stopped_by[row] = token
        finished |= done
        if step == decoding.max_new_tokens - 1 or bool(finished.all()):
            break
        if finished.float().mean() >= COMPACT_FRACTION:
            keep = (~finished).nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            alive, mask, tokens, finished = alive[keep], mask[keep], tokens[keep], finished[keep]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        with context(alive):
            logits = model(
                input_ids=tokens[:, None],
                attention_mask=mask,
                position_ids=(mask.sum(-1, keepdim=True) - 1),
                cache=cache,
                use_cache=True,
            ).logits[:, -1]
    texts = [t.strip() for t in tokenizer.batch_decode(completions, skip_special_tokens=True)]
    return Generation(texts, [len(c) for c in completions], completions, captured, stopped_by)


@torch.no_grad()
def last_token_logits(
    model,
    tokenizer,
    rows: Sequence[Sequence[int]],
    token_ids: Sequence[int],
    row_keys: Sequence[Hashable] | None = None,
    row_context: RowContext | None = None,
    prefix_cache: bool = True,
    length_buckets: bool = True,
) -> Tensor:
    """Raw logits of ``token_ids`` at the position after each row ([rows, len(ids)]), from one prefill."""
    context = row_context or _no_context
    batch = _prepared(model, tokenizer, rows, context, prefix_cache, row_keys)
    logits, _ = prefill(model, batch, row_context=context, buckets=length_buckets, need_cache=False)
    return logits[:, list(token_ids)].float().cpu()
