"""Decode rows that share their trunk: after :func:`metalight.models.shared_prompts.top_prefill`, generate
every decoded row's answer with the trunk run once per distinct token history and the top once per row.

Generated tokens can differ between copies of a prompt, so the trunk cannot be shared for them wholesale; it
is shared exactly where it is the same computation: rows of one prompt that have generated the same tokens so
far (a *history*) have the same trunk states (the trunk's weights are the same for every row). Each step the
trunk runs on one row per history, the top on every row with its history's hidden state. A greedy population
of small perturbations mostly agrees, so a step costs about one trunk row per prompt instead of one per
member; rows that diverge get their own history (the trunk's KV of the parent history is copied), and in the
worst case (every row different) the trunk runs per row as a plain decoder would. Rows leave when they emit a
stop token, as in :func:`metalight.models.row_decoding.decode_rows`, whose outputs these equal.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
from torch import Tensor

from metalight.models.decoding import Decoding, Generation
from metalight.models.layer_split import LayerSplit, SegmentedCache
from metalight.models.row_decoding import next_tokens
from metalight.models.shared_prompts import KV, PromptStates, RowContext, TopPrefill

# Above this share of the vocabulary the candidates save little: every row's full logits are computed.
CANDIDATE_SHARE = 0.125


def _slack(logits: Tensor) -> Tensor:
    """A rounding margin for a logit (added to every bound): 1e-3 plus 8 units in the last place of the
    logit's dtype at its size — far above the rounding of a computed logit, far below typical gaps."""
    return 1e-3 + 8 * torch.finfo(logits.dtype).eps * (logits.abs() + 1)


def choose_tokens(
    split: LayerSplit, hidden: Tensor, history: Tensor, decoding: Decoding, generator: torch.Generator | None
) -> Tensor:
    """Each row's next token from its last hidden state [rows, hidden] after the top.

    Greedy: rows of a history (``history`` [rows]) differ only by their top layers, so the output layer runs
    in full for one representative row per history and, for the others, only on the tokens that could beat
    the representative's argmax a. Between two rows whose normed hidden states differ by Δn, logit v moves by
    at most ‖W_v‖·‖Δn‖, so a token v with z(v) + ‖W_v‖·‖Δn‖ < z(a) − ‖W_a‖·‖Δn‖ (representative's logits z,
    widest Δn of the history, plus a rounding slack) is below a for every row. The argmax over the remaining
    candidates (ascending ids, so ties go to the lowest id as in a full argmax) is the full argmax. Sampling
    needs every row's full logits."""
    normed = split.normalize(hidden)
    if decoding.strategy != "greedy":
        return next_tokens(split.output(normed), decoding, generator)
    rows = torch.arange(len(normed), device=normed.device)
    present, history = torch.unique(history, return_inverse=True)
    representative = torch.full((len(present),), len(normed), device=normed.device).scatter_reduce_(
        0, history, rows, "amin"
    )
    logits = split.output(normed[representative])
    distance = (normed - normed[representative][history]).float().norm(dim=-1)
    widest = distance.new_zeros(len(present)).scatter_reduce_(0, history, distance, "amax")[:, None]
    best, best_id = logits.max(-1, keepdim=True)
    norms = split.output_norms
    slack = _slack(best.float())
    floor = best.float() - norms[best_id] * widest - slack
    candidates = ((logits.float() + norms * widest + slack) >= floor).any(0).nonzero().squeeze(-1)
    if len(candidates) > CANDIDATE_SHARE * logits.shape[-1]:
        return split.output(normed).argmax(-1)
    return candidates[split.output(normed, candidates).argmax(-1)]


def _grow(generated: KV | None, new: KV) -> KV:
    """``generated`` with the step's new columns appended."""
    if generated is None:
        return dict(new)
    return {
        layer: (torch.cat([keys, new[layer][0]], dim=-2), torch.cat([values, new[layer][1]], dim=-2))
        for layer, (keys, values) in generated.items()
    }


def _with_generated(
    cache: SegmentedCache, base: dict[int, list], index: list[Tensor], generated: KV | None
) -> None:
    """Point ``cache`` at the prompt segments (rows ``index``) plus the rows' own generated columns."""
    cache.segments = {
        layer: parts + ([generated[layer]] if generated is not None else []) for layer, parts in base.items()
    }
    cache.index = index + ([None] if generated is not None else [])
    cache.new = {}


@torch.no_grad()
def decode_split(
    split: LayerSplit,
    tokenizer,
    states: PromptStates,
    top: TopPrefill,
    decoding: Decoding,
    stop_ids: Sequence[int],
    row_context: RowContext | None = None,
    generator: torch.Generator | None = None,
) -> Generation:
    """Decode ``top.decode_rows`` (see module docstring); returns their texts, token counts, completion ids
    and stop tokens in that order (``first_token_logits`` is left to the caller: ``top.captured``)."""
    if decoding.strategy not in ("greedy", "sample"):
        raise ValueError(f"decode_split supports greedy and sample decoding, not {decoding.strategy!r}")
    context = row_context or (lambda rows: nullcontext())
    layout = states.layout
    device = layout.suffix_ids.device
    prompts = len(layout.lengths)
    count = len(top.decode_rows)
    completions: list[list[int]] = [[] for _ in range(count)]
    stopped_by: list[int | None] = [None] * count
    stops = torch.tensor(sorted(set(stop_ids)), device=device)
    alive = torch.arange(count, device=device)  # positions in top.decode_rows
    history_prompt = torch.arange(prompts, device=device)  # the prompt of each history
    history_of_row = top.decode_rows % prompts  # at first a row's history is its prompt
    trunk_generated: KV | None = None
    top_generated: KV | None = None
    trunk_cache, top_cache = SegmentedCache(), SegmentedCache()
    previous = prompts  # histories before this step
    hidden = top.last_hidden
    for step in range(decoding.max_new_tokens):
        tokens = choose_tokens(split, hidden, history_of_row, decoding, generator)
        done = torch.isin(tokens, stops)
        for row, token, stop in zip(alive.tolist(), tokens.tolist(), done.tolist()):
            if stop:
                stopped_by[row] = token
            else:
                completions[row].append(token)
        if step == decoding.max_new_tokens - 1 or bool(done.all()):
            break
        keep = (~done).nonzero().squeeze(-1)
        alive, tokens = alive[keep], tokens[keep]
        # A history continues per (history, token): rows that chose the same token stay together.
        vocab = split.model.lm_head.out_features
        histories, history_of_row = torch.unique(history_of_row[keep] * vocab + tokens, return_inverse=True)
        parent, history_tokens = histories // vocab, histories % vocab
        history_prompt = history_prompt[parent]
        if trunk_generated is not None and not (
            len(parent) == previous and bool((parent == torch.arange(previous, device=device)).all())
        ):
            trunk_generated = {layer: (k[parent], v[parent]) for layer, (k, v) in trunk_generated.items()}
        previous = len(parent)
        if top_generated is not None:
            top_generated = {layer: (k[keep], v[keep]) for layer, (k, v) in top_generated.items()}
        key_mask = torch.cat(
            [
                layout.key_mask(history_prompt),
                torch.ones((len(histories), step + 1), dtype=torch.long, device=device),
            ],
            dim=1,
        )
        positions = (layout.lengths[history_prompt] + step)[:, None]
        _with_generated(trunk_cache, states.segments, states.segment_index(history_prompt), trunk_generated)
        shared = split.run(
            split.embed(history_tokens[:, None]), split.trunk_layers, key_mask, positions, trunk_cache
        )
        trunk_generated = _grow(trunk_generated, trunk_cache.new)
        _with_generated(top_cache, top.segments, top.segment_index(alive), top_generated)
        with context(top.decode_rows[alive]):
            hidden = split.run(
                shared[history_of_row],
                split.top_layers,
                key_mask[history_of_row],
                positions[history_of_row],
                top_cache,
            )[:, -1]
        top_generated = _grow(top_generated, top_cache.new)
    texts = [t.strip() for t in tokenizer.batch_decode(completions, skip_special_tokens=True)]
    return Generation(texts, [len(c) for c in completions], completions, None, stopped_by)
