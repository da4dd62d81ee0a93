"""Shared-prefix KV caching for batches of prompts built from a few templates.

Every dual-prompt row starts with one of two long instructions ("Answer the following question with
keywords...", "Do you know the answer..."), and sampled rows repeat whole prompts. On CPU the prefill is
the dominant cost of such batches, so rows are grouped by their leading tokens, each group's longest common
prefix is run through the model once, its KV cache is copied to the group's rows, and only the remaining
suffix tokens are prefilled. Rows become ``[group prefix (left-padded)] [suffix (left-padded)]``; the
attention mask and position ids skip both paddings, so results equal the plain left-padded batch (tested).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from metalight.models.padding import left_pad, position_ids

GROUP_KEY_TOKENS = 4
MIN_SAVED_TOKENS = 64


@dataclass
class PrefixedBatch:
    """Model inputs whose first ``prefix_len`` columns are already in ``cache`` (``None``: no caching)."""

    input_ids: Tensor
    attention_mask: Tensor
    cache: object | None
    prefix_len: int
    # Before the cache was copied to the rows: each group's prefix KV per layer ([groups, heads, prefix_len,
    # head dim] keys and values) and the group of each row (for prefills that attend to shared prefixes).
    group_kv: list[tuple[Tensor, Tensor]] | None = None
    group_of_row: Tensor | None = None

    @property
    def new_input_ids(self) -> Tensor:
        """The columns the model still has to process."""
        return self.input_ids[:, self.prefix_len :]

    def position_ids(self) -> Tensor:
        """Positions of the uncached columns, counting only real tokens."""
        return position_ids(self.attention_mask)[:, self.prefix_len :]


def common_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Length of the longest token prefix shared by all ``rows``."""
    shortest = min(len(r) for r in rows)
    for i in range(shortest):
        token = rows[0][i]
        if any(r[i] != token for r in rows):
            return i
    return shortest


def prepare_batch(
    model,
    rows: Sequence[Sequence[int]],
    pad_id: int,
    enabled: bool = True,
    row_keys: Sequence[Hashable] | None = None,
    prefill_context: Callable[[list[int]], AbstractContextManager] | None = None,
) -> PrefixedBatch:
    """Left-pad ``rows``; when their shared prefixes save enough work, prefill them once into a KV cache.

    ``row_keys``: rows with different keys never share a prefix (e.g. rows run under different weight
    perturbations). ``prefill_context(rows)`` wraps the prefix forward pass; it receives, for each prefix,
    the index of the row it was taken from.
    """
    device = next(model.parameters()).device
    plan = plan_prefix_groups(rows, row_keys) if enabled else None
    if plan is None:
        ids, mask = left_pad(rows, pad_id)
        return PrefixedBatch(ids.to(device), mask.to(device), None, 0)
    group_of_row, prefix_lengths, first_row = plan
    prefixes = [rows[first_row[g]][:k] for g, k in enumerate(prefix_lengths)]
    width = max(prefix_lengths)
    prefix_ids, prefix_mask = left_pad(prefixes, pad_id, width=width)
    prefix_ids, prefix_mask = prefix_ids.to(device), prefix_mask.to(device)
    with (prefill_context or (lambda _: nullcontext()))(first_row):
        cache = _prefill(model, prefix_ids, prefix_mask)
    index = torch.as_tensor(group_of_row, device=device)
    group_kv = [(layer.keys, layer.values) for layer in cache.layers]
    cache.batch_select_indices(index)  # replaces (does not modify) the per-group tensors kept above
    suffixes = [row[prefix_lengths[g] :] for row, g in zip(rows, group_of_row)]
    suffix_ids, suffix_mask = left_pad(suffixes, pad_id)
    input_ids = torch.cat([prefix_ids[index], suffix_ids.to(device)], dim=1)
    attention_mask = torch.cat([prefix_mask[index], suffix_mask.to(device)], dim=1)
    return PrefixedBatch(input_ids, attention_mask, cache, width, group_kv, index)


def plan_prefix_groups(
    rows: Sequence[Sequence[int]], row_keys: Sequence[Hashable] | None = None
) -> tuple[list[int], list[int], list[int]] | None:
    """Group rows by (row key, first tokens); return (group of each row, prefix length per group, a row per
    group), or ``None`` when caching would save fewer than ``MIN_SAVED_TOKENS`` prefill tokens."""
    if len(rows) < 2 or min(len(r) for r in rows) < 2:
        return None
    row_keys = row_keys if row_keys is not None else [None] * len(rows)
    keys: dict[tuple, int] = {}
    group_of_row = [
        keys.setdefault((k, tuple(r[:GROUP_KEY_TOKENS])), len(keys)) for r, k in zip(rows, row_keys)
    ]
    members: list[list[int]] = [[] for _ in keys]
    for i, g in enumerate(group_of_row):
        members[g].append(i)
    # Keep at least one uncached token per row: its logits start the generation.
    prefix_lengths = [
        min(common_prefix_length([rows[i] for i in m]), min(len(rows[i]) for i in m) - 1) for m in members
    ]
    saved = sum(prefix_lengths[g] for g in group_of_row) - sum(prefix_lengths)
    if saved < MIN_SAVED_TOKENS or min(prefix_lengths) < 1:
        return None
    return group_of_row, prefix_lengths, [m[0] for m in members]


def _prefill(model, prefix_ids: Tensor, prefix_mask: Tensor):
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    model(
        input_ids=prefix_ids,
        attention_mask=prefix_mask,
        position_ids=position_ids(prefix_mask),
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    )
    return cache


def prefill_sequence(model, ids: Sequence[int], previous: tuple[Sequence[int], object] | None = None):
    """The KV cache (``DynamicCache``) of one token sequence, run as a batch of one.

    ``previous`` = (ids, cache) of an earlier call: the cache is cropped to the tokens both sequences share
    and only the rest is run (the earlier cache is modified in place and returned).
    """
    device = next(model.parameters()).device
    shared = (
        common_prefix_length([previous[0], ids])
        if previous is not None and len(previous[0]) and len(ids)
        else 0
    )
    if shared == 0:
        tokens = torch.as_tensor([list(ids)], dtype=torch.long, device=device)
        return _prefill(model, tokens, torch.ones_like(tokens))
    cache = previous[1]
    if shared < cache.get_seq_length():
        cache.crop(
            shared - cache.get_seq_length()
        )  # a negative count removes tokens in every transformers 5.x
    if shared < len(ids):
        new = torch.as_tensor([list(ids[shared:])], dtype=torch.long, device=device)
        positions = torch.arange(shared, len(ids), device=device)[None]
        model(
            input_ids=new,
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long, device=device),
            position_ids=positions,
            cache=cache,
            use_cache=True,
            logits_to_keep=1,
        )
    return cache


def batch_on_prefilled(
    model,
    cache,
    cuts: Sequence[int],
    suffixes: Sequence[Sequence[int]],
    prefix_ids: Sequence[int],
    pad_id: int,
) -> PrefixedBatch:
    """Rows ``prefix_ids[:cut] + suffix``, each taking its first ``cut`` tokens from ``cache`` — the KV of
    ``prefix_ids`` from :func:`prefill_sequence` — sliced and left-padded, so only the suffixes are run.

    ICM's leave-one-out prompts share ever longer prefixes of one demonstration sequence: row i keeps the
    demonstrations before claim i and recomputes only those after it (exact, unlike attention masking).
    """
    from transformers import DynamicCache

    device = next(model.parameters()).device
    width = max(cuts)
    if width == 0:
        ids, mask = left_pad(suffixes, pad_id)
        return PrefixedBatch(ids.to(device), mask.to(device), None, 0)
    prefix_rows = [list(prefix_ids[:cut]) for cut in cuts]
    prefix_tokens, prefix_mask = left_pad(prefix_rows, pad_id, width=width)
    layers = []
    for layer in cache.layers:
        keys, values = layer.keys, layer.values
        shape = (len(cuts), keys.shape[1], width, keys.shape[3])
        new_keys, new_values = keys.new_zeros(shape), values.new_zeros(shape)
        for row, cut in enumerate(cuts):
            if cut:
                new_keys[row, :, width - cut :] = keys[0, :, :cut]
                new_values[row, :, width - cut :] = values[0, :, :cut]
        layers.append((new_keys, new_values))
    suffix_tokens, suffix_mask = left_pad(suffixes, pad_id)
    input_ids = torch.cat([prefix_tokens, suffix_tokens], dim=1).to(device)
    attention_mask = torch.cat([prefix_mask, suffix_mask], dim=1).to(device)
    return PrefixedBatch(
        input_ids, attention_mask, DynamicCache(ddp_cache_data=layers, config=model.config), width
    )
