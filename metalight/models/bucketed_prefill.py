"""Prefill a left-padded batch in buckets of similar length, so padding columns are not computed.

Prompts of one batch differ in length; a plain left-padded prefill runs every row through the longest
row's width, and on CPU (where cost grows with tokens processed) half of the work can be padding. Here the
uncached columns of a :class:`~metalight.models.prefix_cache.PrefixedBatch` are run per bucket of rows with
similar lengths (each bucket trimmed to its own longest row), and the buckets' KV caches are merged back
into the batch's left-padded layout, so decoding continues on one batch exactly as after a plain prefill
(padding positions are masked either way). The buckets are chosen by a dynamic programme that minimises
processed tokens plus a per-forward cost, which is large on GPUs (one bucket) and small on CPU.

When only the last logits are wanted (no cache, no per-row context), the rows are instead packed into
one sequence with a 4D mask (:func:`packed_last_logits`): no padding and a single forward.

Not for sharded models that generate in lock step (FSDP / ZeRO-3): ranks would run different numbers of
forward passes. Callers pass ``buckets=False`` there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import Tensor

from metalight.models.prefix_cache import PrefixedBatch

RowContext = Callable[[Tensor], AbstractContextManager]

# What one extra forward call costs, in processed tokens. On CPU a forward streams every weight from memory
# once: measured on the embedded model (1 thread), t ≈ 0.12 s + 3 ms × tokens, i.e. about 40 tokens. On an
# accelerator a forward at small batch is latency-bound, so extra calls rarely pay off.
CALL_COST_TOKENS = {"cpu": 40}
ACCELERATOR_CALL_COST_TOKENS = 4096
PACK_COLUMNS_PER_HIDDEN = 2


def plan_buckets(lengths: Sequence[int], call_cost: int) -> list[list[int]]:
    """Split row indices into buckets minimising Σ(rows × longest length) + call_cost × buckets.

    Rows are grouped by length (sorted), so a bucket is a contiguous range of distinct lengths; the
    programme runs over distinct lengths (at most the prompt budget), not rows. Rows of length 0 need no
    forward pass and are left out.
    """
    by_length: dict[int, list[int]] = {}
    for row, length in enumerate(lengths):
        if length > 0:
            by_length.setdefault(int(length), []).append(row)
    distinct = sorted(by_length)
    if not distinct:
        return []
    counts = [len(by_length[k]) for k in distinct]
    best = [0.0] * (len(distinct) + 1)  # best[j]: cost of the first j distinct lengths
    cut = [0] * (len(distinct) + 1)
    for j in range(1, len(distinct) + 1):
        rows, best[j] = 0, float("inf")
        for i in range(j, 0, -1):  # bucket = distinct lengths i..j (1-based), width distinct[j - 1]
            rows += counts[i - 1]
            cost = best[i - 1] + rows * distinct[j - 1] + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i - 1
    buckets, j = [], len(distinct)
    while j > 0:
        i = cut[j]
        buckets.append([row for k in distinct[i:j] for row in by_length[k]])
        j = i
    return buckets[::-1]


def call_cost(device: torch.device) -> int:
    """Per-forward cost in tokens for :func:`plan_buckets` on ``device``."""
    return CALL_COST_TOKENS.get(device.type, ACCELERATOR_CALL_COST_TOKENS)


def _select_rows(model, cache, rows: Tensor):
    """A new cache holding ``rows`` of ``cache`` (``None`` stays ``None``)."""
    from transformers import DynamicCache

    if cache is None:
        return None
    return DynamicCache(
        ddp_cache_data=[(layer.keys[rows], layer.values[rows]) for layer in cache.layers], config=model.config
    )


@torch.no_grad()
def prefill(
    model,
    batch: PrefixedBatch,
    leave_last: bool = False,
    row_context: RowContext | None = None,
    buckets: bool = True,
    need_cache: bool = True,
) -> tuple[Tensor | None, object | None]:
    """Run ``batch``'s uncached columns; returns (last-position logits [rows, vocab] or ``None`` when
    ``leave_last``, the KV cache of every processed column in the batch's layout or ``None``).

    ``leave_last``: keep each row's last token unprocessed (for ``model.generate``, which must run at least
    one new token itself). ``row_context(rows)`` wraps every forward with the original indices of the rows
    it contains. ``buckets=False``: one forward over the whole batch (the plain left-padded prefill).
    ``need_cache=False`` skips merging the buckets' caches (when only the logits are wanted).
    """
    context = row_context or (lambda rows: nullcontext())
    device = batch.input_ids.device
    total, width = batch.input_ids.shape
    end = width - 1 if leave_last else width
    if end <= batch.prefix_len:  # nothing left to run before generation
        return None, batch.cache
    lengths = batch.attention_mask[:, batch.prefix_len : end].sum(-1).tolist()
    plan = plan_buckets(lengths, call_cost(device)) if buckets else []
    if len(plan) > 1 and not need_cache and row_context is None and _packable(model, batch):
        return packed_last_logits(model, batch), None
    if len(plan) <= 1:
        if leave_last:  # the caller's generate runs the batch as it is
            return None, batch.cache
        return _forward(
            model,
            batch,
            torch.arange(total, device=device),
            end - batch.prefix_len,
            end,
            batch.cache,
            context,
            leave_last,
        )
    logits: Tensor | None = None
    merged: list[list[Tensor]] | None = None
    covered = {row for bucket in plan for row in bucket}
    unrun = torch.tensor([r for r in range(total) if r not in covered], dtype=torch.long, device=device)
    for bucket in plan:
        rows = torch.tensor(bucket, device=device)
        bucket_width = max(lengths[r] for r in bucket)
        part_logits, cache = _forward(
            model, batch, rows, bucket_width, end, _select_rows(model, batch.cache, rows), context, leave_last
        )
        if part_logits is not None:
            if logits is None:
                logits = part_logits.new_zeros((total, part_logits.shape[-1]))
            logits[rows] = part_logits
        if need_cache:
            if merged is None:
                merged = _zeros_layout(cache, total, end)
                if len(unrun) and batch.cache is not None:  # rows whose uncached columns are all padding
                    _place(merged, _select_rows(model, batch.cache, unrun), unrun, batch.prefix_len, 0, end)
            _place(merged, cache, rows, batch.prefix_len, bucket_width, end)
    if merged is None:
        return logits, None
    from transformers import DynamicCache

    return logits, DynamicCache(ddp_cache_data=merged, config=model.config)


def _forward(
    model,
    batch: PrefixedBatch,
    rows: Tensor,
    bucket_width: int,
    end: int,
    cache,
    context: RowContext,
    leave_last: bool,
) -> tuple[Tensor | None, object]:
    from transformers import DynamicCache

    p = batch.prefix_len
    ids = batch.input_ids[rows, end - bucket_width : end]
    mask = torch.cat(
        [batch.attention_mask[rows, :p], batch.attention_mask[rows, end - bucket_width : end]], dim=1
    )
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, p:]
    cache = cache if cache is not None else DynamicCache(config=model.config)
    with context(rows):
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    return (None if leave_last else out.logits[:, -1]), cache


def _zeros_layout(cache, rows: int, width: int) -> list[list[Tensor]]:
    """Zero keys and values [rows, heads, width, head dim] per layer, like ``cache``'s tensors."""
    return [
        [t.new_zeros((rows, t.shape[1], width, t.shape[3])) for t in (layer.keys, layer.values)]
        for layer in cache.layers
    ]


def _place(
    merged: list[list[Tensor]], cache, rows: Tensor, prefix_len: int, bucket_width: int, end: int
) -> None:
    """Copy a bucket's cache ([prefix | its trimmed columns]) into the batch layout [prefix | pad |
    columns]."""
    for slot, layer in zip(merged, cache.layers):
        for target, source in zip(slot, (layer.keys, layer.values)):
            if prefix_len:
                target[rows, :, :prefix_len] = source[:, :, :prefix_len]
            if bucket_width:
                target[rows, :, end - bucket_width : end] = source[
                    :, :, prefix_len : prefix_len + bucket_width
                ]


def packed_columns(batch: PrefixedBatch) -> int:
    """Key columns of the packed forward: each group's prefix once, plus every real uncached token."""
    prefixes = len(batch.group_kv[0][0]) * batch.prefix_len if batch.group_kv else 0
    return prefixes + int(batch.attention_mask[:, batch.prefix_len :].sum())


def _packable(model, batch: PrefixedBatch) -> bool:
    """Pack when the model's attention takes a custom 4D mask as given (eager and SDPA in transformers 5) and
    the packed attention stays cheap: every token attends over all columns (masked), about 4·columns·hidden
    FLOPs per token and layer against roughly 24·hidden² for the layer's matrices, so columns are capped at
    PACK_COLUMNS_PER_HIDDEN × hidden (attention then costs at most a third of the matrices)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    return (
        getattr(model.config, "_attn_implementation", None) in ("eager", "sdpa")
        and packed_columns(batch) <= PACK_COLUMNS_PER_HIDDEN * config.hidden_size
    )


@torch.no_grad()
def packed_last_logits(model, batch: PrefixedBatch) -> Tensor:
    """Last-position logits [rows, vocab] from one forward over every row's uncached real tokens packed
    into a single sequence. A 4D mask lets each token see its own row's cached prefix (each group's prefix
    is stored once) and the earlier tokens of its own row; positions continue each row's prefix."""
    from transformers import DynamicCache

    device = batch.input_ids.device
    p = batch.prefix_len
    real = batch.attention_mask[:, p:].bool()
    tokens = batch.input_ids[:, p:][real][None]  # row-major: each row's tokens stay contiguous
    positions = batch.position_ids()[real][None]
    row_of_token = torch.arange(len(real), device=device)[:, None].expand_as(real)[real]
    ends = real.sum(-1).cumsum(0) - 1  # index of each row's last token in the packed sequence
    causal = torch.ones(len(row_of_token), len(row_of_token), dtype=torch.bool, device=device).tril_()
    allowed = causal & (row_of_token[:, None] == row_of_token[None, :])
    cache = None
    if batch.cache is not None:
        groups = batch.group_of_row
        first = torch.full((len(batch.group_kv[0][0]),), -1, dtype=torch.long, device=device)
        first.scatter_reduce_(0, groups, torch.arange(len(groups), device=device), "amax", include_self=True)
        group_mask = batch.attention_mask[first, :p].bool()  # [groups, prefix_len]
        # Column (g, j) of the packed prefix is visible to a token of row r iff g = group(r) and j is real.
        column_group = torch.arange(len(first), device=device)[:, None].expand(-1, p)
        visible = (groups[row_of_token][:, None] == column_group.reshape(1, -1)) & group_mask.reshape(1, -1)
        allowed = torch.cat([visible, allowed], dim=1)
        cache = DynamicCache(
            ddp_cache_data=[
                (
                    k.transpose(0, 1).reshape(1, k.shape[1], -1, k.shape[3]),
                    v.transpose(0, 1).reshape(1, v.shape[1], -1, v.shape[3]),
                )
                for k, v in batch.group_kv
            ],
            config=model.config,
        )
    dtype = next(model.parameters()).dtype
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(
        ~allowed, torch.finfo(dtype).min
    )
    out = model(
        input_ids=tokens,
        attention_mask=mask[None, None],
        position_ids=positions,
        cache=cache,
        use_cache=cache is not None,
        logits_to_keep=ends,
    )
    return out.logits[0]
