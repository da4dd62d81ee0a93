"""Prefill many rows that are copies of a few prompts, each copy with its own top layers.

Rows are (copy c, prompt k), numbered ``c · K + k`` for K prompts; in the ES engine a copy is a population
member whose perturbation lives in the top layers (:class:`metalight.models.layer_split.LayerSplit`). Every
copy of a prompt has the same trunk states, so :func:`trunk_states` runs the trunk once per prompt and
:func:`top_prefill` runs only the top once per row.

Prompts are laid out as in :mod:`metalight.models.prefix_cache`: ``[group prefix (left-padded to P)]
[suffix (left-padded to S)]``, where a group shares its leading tokens (the instruction of a prompt template).
A group's prefix goes through the trunk once, and through the top once per copy; suffixes are prefilled in
buckets of similar length (:func:`metalight.models.bucketed_prefill.plan_buckets`), so padding columns are
mostly not computed. Positions count real tokens only, so results equal a plain left-padded batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor

from metalight.models.bucketed_prefill import call_cost, plan_buckets
from metalight.models.layer_split import LayerSplit, SegmentedCache
from metalight.models.padding import left_pad, position_ids
from metalight.models.prefix_cache import plan_prefix_groups

RowContext = Callable[[Tensor], AbstractContextManager]
KV = dict[int, tuple[Tensor, Tensor]]


def _positions(key_mask: Tensor, columns: int) -> Tensor:
    """Positions of the last ``columns`` columns, counting real tokens only."""
    return position_ids(key_mask)[:, -columns:]


@dataclass
class PromptLayout:
    """K prompts as ``[group prefix | suffix]`` (module docstring); without shared prefixes P = 0."""

    prefix_ids: Tensor  # [G, P]
    prefix_mask: Tensor  # [G, P]
    group: Tensor  # [K] the group of each prompt
    suffix_ids: Tensor  # [K, S]
    suffix_mask: Tensor  # [K, S]
    lengths: Tensor  # [K] real tokens of each prompt

    @property
    def prefix_width(self) -> int:
        """P, the prefix columns (0: no shared prefix)."""
        return self.prefix_ids.shape[1]

    @property
    def suffix_lengths(self) -> list[int]:
        """Real suffix tokens of each prompt."""
        return self.suffix_mask.sum(-1).tolist()

    def key_mask(self, prompts: Tensor) -> Tensor:
        """[len(prompts), P + S]: which of the layout's columns are real tokens of each prompt."""
        return torch.cat([self.prefix_mask[self.group[prompts]], self.suffix_mask[prompts]], dim=1)


def plan_layout(prompts: Sequence[Sequence[int]], pad_id: int, share_prefixes: bool, device) -> PromptLayout:
    """The layout of ``prompts`` (token ids); ``share_prefixes=False`` (or too little to share) gives
    P = 0."""
    plan = plan_prefix_groups(prompts) if share_prefixes else None
    if plan is None:
        group_of, prefix_lengths, first = [0] * len(prompts), [0], [0]
    else:
        group_of, prefix_lengths, first = plan
    prefixes = [list(prompts[row][:length]) for row, length in zip(first, prefix_lengths)]
    suffixes = [list(p[prefix_lengths[g] :]) for p, g in zip(prompts, group_of)]
    prefix_ids, prefix_mask = left_pad(prefixes, pad_id, device)
    suffix_ids, suffix_mask = left_pad(suffixes, pad_id, device)
    return PromptLayout(
        prefix_ids,
        prefix_mask,
        torch.as_tensor(group_of, device=device),
        suffix_ids,
        suffix_mask,
        torch.as_tensor([len(p) for p in prompts], device=device),
    )


@dataclass
class PromptStates:
    """The trunk's work on K prompts: the layout, the trunk KV segments per trunk layer (the groups' prefixes
    [G, P] if any, then the suffixes [K, S]), and the hidden states entering the top at those columns."""

    layout: PromptLayout
    segments: dict[int, list[tuple[Tensor, Tensor]]]
    prefix_hidden: Tensor | None  # [G, P, hidden]
    suffix_hidden: Tensor  # [K, S, hidden]

    def segment_index(self, prompts: Tensor) -> list[Tensor]:
        """Per trunk segment, the segment row of each of ``prompts``."""
        index = [prompts]
        return [self.layout.group[prompts], *index] if self.prefix_hidden is not None else index

    def nbytes(self) -> int:
        """Bytes held (trunk KV and hidden states)."""
        tensors = [t for parts in self.segments.values() for pair in parts for t in pair] + [
            self.suffix_hidden
        ]
        tensors += [self.prefix_hidden] if self.prefix_hidden is not None else []
        return sum(t.numel() * t.element_size() for t in tensors)


def _suffix_buckets(layout: PromptLayout, device, copies: int = 1) -> list[list[int]]:
    """Prompts prefilled together: similar suffix lengths (each prompt stands for ``copies`` rows)."""
    return plan_buckets(layout.suffix_lengths, call_cost(device) / copies)


def _place(target: KV, new: KV, rows: Tensor, columns: int, like: tuple[int, int]) -> KV:
    """Write ``new`` [rows, heads, columns, dim] into the last ``columns`` of ``target`` ([like[0] rows,
    heads, like[1] columns, dim] per layer, created as zeros on first use)."""
    for layer, (keys, values) in new.items():
        if layer not in target:
            shape = (like[0], keys.shape[1], like[1], keys.shape[3])
            target[layer] = (keys.new_zeros(shape), values.new_zeros(shape))
        target[layer][0][rows, :, like[1] - columns :] = keys
        target[layer][1][rows, :, like[1] - columns :] = values
    return target


@torch.no_grad()
def trunk_states(
    split: LayerSplit, prompts: Sequence[Sequence[int]], pad_id: int, share_prefixes: bool = True
) -> PromptStates:
    """Run the trunk once over ``prompts`` (token ids) and keep what every copy of them shares."""
    device = split.base.embed_tokens.weight.device
    layout = plan_layout(prompts, pad_id, share_prefixes, device)
    cache = SegmentedCache()
    prefix_hidden = None
    if layout.prefix_width:
        mask = layout.prefix_mask
        prefix_hidden = split.run(
            split.embed(layout.prefix_ids), split.trunk_layers, mask, _positions(mask, mask.shape[1]), cache
        )
        cache.add_segment(cache.new)
    width = layout.suffix_ids.shape[1]
    suffix_kv: KV = {}
    suffix_hidden = None
    for bucket in _suffix_buckets(layout, device):
        rows = torch.as_tensor(bucket, device=device)
        columns = max(layout.suffix_lengths[k] for k in bucket)
        key_mask = layout.key_mask(rows)
        key_mask = torch.cat(
            [key_mask[:, : layout.prefix_width], key_mask[:, key_mask.shape[1] - columns :]], dim=1
        )
        cache.index = [layout.group[rows]] if prefix_hidden is not None else []
        cache.new = {}
        hidden = split.run(
            split.embed(layout.suffix_ids[rows, width - columns :]),
            split.trunk_layers,
            key_mask,
            _positions(key_mask, columns),
            cache,
        )
        if suffix_hidden is None:
            suffix_hidden = hidden.new_zeros((len(prompts), width, hidden.shape[-1]))
        suffix_hidden[rows, width - columns :] = hidden
        _place(suffix_kv, cache.new, rows, columns, (len(prompts), width))
    cache.add_segment(suffix_kv)
    return PromptStates(layout, cache.segments, prefix_hidden, suffix_hidden)


@dataclass
class TopPrefill:
    """The top's prefill of every row (copy-major): the decoded rows' last hidden states (their first
    token's logits come from them) and KV segments, and every row's logits of the captured token ids."""

    decode_rows: Tensor  # [D] original row of each decoded row (copy-major, prompt order within a copy)
    last_hidden: Tensor | None  # [D, hidden] the decoded rows' last hidden states after the top (not normed)
    captured: Tensor | None  # [rows, len(capture ids)], float32
    segments: dict[int, list[tuple[Tensor, Tensor]]]  # per top layer: copies' prefixes [C·G, P], rows' [D, S]
    prefix_index: Tensor | None  # [D] the prefix segment row of each decoded row

    def segment_index(self, decoded: Tensor) -> list[Tensor]:
        """Per top segment, the segment row of each decoded row in ``decoded`` (positions in decode_rows)."""
        return [self.prefix_index[decoded], decoded] if self.prefix_index is not None else [decoded]


@torch.no_grad()
def top_prefill(
    split: LayerSplit,
    states: PromptStates,
    copies: int,
    row_context: RowContext | None,
    decode_prompts: Sequence[int],
    capture_ids: Sequence[int] | None,
) -> TopPrefill:
    """Run the top over every (copy, prompt) row of ``states``; rows of ``decode_prompts`` keep their KV and
    last hidden states for decoding, every row gets the logits of ``capture_ids``. ``row_context(rows)`` wraps
    each forward with the original rows it contains (for a prefix: a row of that copy and group)."""
    context = row_context or (lambda rows: nullcontext())
    layout = states.layout
    device = layout.suffix_ids.device
    prompts, width, groups = len(layout.lengths), layout.suffix_ids.shape[1], layout.prefix_ids.shape[0]
    decoded = torch.zeros(prompts, dtype=torch.bool)
    decoded[list(decode_prompts)] = True
    decode_rows = torch.tensor(
        [c * prompts + k for c in range(copies) for k in range(prompts) if decoded[k]],
        dtype=torch.long,
        device=device,
    )
    position = torch.full((copies * prompts,), -1, dtype=torch.long, device=device)
    position[decode_rows] = torch.arange(len(decode_rows), device=device)
    cache = SegmentedCache()
    shared_prefix = states.prefix_hidden is not None
    if shared_prefix:
        firsts = [int((layout.group == g).nonzero()[0]) for g in range(groups)]
        representatives = torch.tensor(
            [c * prompts + k for c in range(copies) for k in firsts], device=device
        )
        mask = layout.prefix_mask.repeat(copies, 1)
        with context(representatives):
            split.run(
                states.prefix_hidden.repeat(copies, 1, 1),
                split.top_layers,
                mask,
                _positions(mask, mask.shape[1]),
                cache,
            )
        cache.add_segment(cache.new)
    last_hidden = captured = None
    suffix_kv: KV = {}
    for bucket in _suffix_buckets(layout, device, copies):
        columns = max(layout.suffix_lengths[k] for k in bucket)
        prompt_of = torch.tensor([k for _ in range(copies) for k in bucket], device=device)
        copy_of = torch.tensor([c for c in range(copies) for _ in bucket], device=device)
        rows = copy_of * prompts + prompt_of
        key_mask = layout.key_mask(prompt_of)
        key_mask = torch.cat(
            [key_mask[:, : layout.prefix_width], key_mask[:, key_mask.shape[1] - columns :]], dim=1
        )
        cache.index = [copy_of * groups + layout.group[prompt_of]] if shared_prefix else []
        cache.new = {}
        with context(rows):
            hidden = split.run(
                states.suffix_hidden[prompt_of, width - columns :],
                split.top_layers,
                key_mask,
                _positions(key_mask, columns),
                cache,
            )
        last = hidden[:, -1]
        keep = decoded.to(device)[prompt_of]
        if capture_ids is not None:
            if captured is None:
                captured = torch.zeros(
                    (copies * prompts, len(capture_ids)), dtype=torch.float32, device=device
                )
            captured[rows] = split.head(last, capture_ids).float()
        if bool(keep.any()):
            if last_hidden is None:
                last_hidden = last.new_zeros((len(decode_rows), last.shape[-1]))
            last_hidden[position[rows[keep]]] = last[keep]
            _place(
                suffix_kv,
                {layer: (k[keep], v[keep]) for layer, (k, v) in cache.new.items()},
                position[rows[keep]],
                columns,
                (len(decode_rows), width),
            )
    if suffix_kv:
        cache.add_segment(suffix_kv)
    prefix_index = None
    if shared_prefix:
        prefix_index = (decode_rows // prompts) * groups + layout.group[decode_rows % prompts]
    return TopPrefill(decode_rows, last_hidden, captured, cache.segments if suffix_kv else {}, prefix_index)
