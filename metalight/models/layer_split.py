"""Run a decoder-only model in two parts that see different rows: the trunk (embeddings + decoder layers
[0, first)) and the top (layers [first, L) + final norm + output layer).

Used where many rows share the trunk's input and differ only above it — e.g. an evolution-strategies
population perturbed on layers [first, L): the trunk runs once per distinct token sequence, the top once per
row. Each part calls the model's own decoder layers and rotary embedding, so a part computes what the
model's forward computes for those layers (same modules, same order); only the attention mask is built here
(an additive 4D mask, as :func:`metalight.models.bucketed_prefill.packed_last_logits` passes).

The KV cache is a :class:`SegmentedCache`: a row's keys and values are the concatenation of its slice of
each stored segment (a prompt prefix shared by a group of rows, the row's suffix, its generated tokens) and
the new columns, so a segment shared by many rows is stored once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

# Architectures whose base model forward is exactly embeddings -> rotary -> full-attention layers -> norm.
SPLIT_MODEL_TYPES = ("llama", "qwen2", "qwen3")


def split_unsupported(model) -> str | None:
    """Why ``model`` cannot be run in parts (``None``: it can)."""
    config = model.config
    base = getattr(model, "model", None)
    if getattr(config, "model_type", None) not in SPLIT_MODEL_TYPES:
        return f"model type {getattr(config, 'model_type', None)!r} is not one of {list(SPLIT_MODEL_TYPES)}"
    if (
        base is None
        or not all(hasattr(base, name) for name in ("embed_tokens", "layers", "norm", "rotary_emb"))
        or not hasattr(model, "lm_head")
    ):
        return (
            f"{type(model).__name__} does not have the embed_tokens / layers / norm / rotary_emb / "
            "lm_head layout"
        )
    if getattr(config, "_attn_implementation", None) not in ("eager", "sdpa"):
        return (
            f"attention implementation {getattr(config, '_attn_implementation', None)!r} "
            "(needs eager or sdpa)"
        )
    if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or []):
        return "the model has sliding-window or other non-full attention layers"
    if len({p.device for p in model.parameters()}) != 1:
        return "the model's parameters are spread over several devices"
    return None


class SegmentedCache:
    """KV cache of a forward over rows that share stored segments.

    ``segments[layer]`` is a list of (keys, values) tensors [n, kv heads, length, head dim]; ``index`` holds,
    per segment, the segment row of each row of the current forward (``None``: the rows are the segment's
    rows). On ``update`` (called by the model's attention) the layer's new keys / values are kept in
    ``new[layer]`` and the attention sees, per row, its segments' columns followed by the new ones.
    """

    def __init__(self) -> None:
        self.segments: dict[int, list[tuple[Tensor, Tensor]]] = {}
        self.index: list[Tensor | None] = []
        self.new: dict[int, tuple[Tensor, Tensor]] = {}

    def update(self, keys: Tensor, values: Tensor, layer_idx: int, *args, **kwargs) -> tuple[Tensor, Tensor]:
        """Keep the new columns of ``layer_idx`` and return the rows' full keys and values."""
        self.new[layer_idx] = (keys, values)
        parts = self.segments.get(layer_idx, [])
        if not parts:
            return keys, values
        rows = [(k, v) if i is None else (k[i], v[i]) for (k, v), i in zip(parts, self.index)]
        return (
            torch.cat([k for k, _ in rows] + [keys], dim=-2),
            torch.cat([v for _, v in rows] + [values], dim=-2),
        )

    def add_segment(self, kv: dict[int, tuple[Tensor, Tensor]]) -> None:
        """Append a stored segment (per layer); set ``index`` for it before the next forward."""
        for layer, pair in kv.items():
            self.segments.setdefault(layer, []).append(pair)


def causal_mask(key_mask: Tensor, query_length: int, dtype: torch.dtype) -> Tensor:
    """Additive 4D mask [rows, 1, queries, keys] for the last ``query_length`` columns of ``key_mask``
    ([rows, keys], 1 = real): a query sees real keys up to its own column."""
    keys = key_mask.shape[-1]
    column = torch.arange(keys, device=key_mask.device)
    query = torch.arange(keys - query_length, keys, device=key_mask.device)
    allowed = key_mask.bool()[:, None, :] & (column[None, :] <= query[:, None])[None]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=key_mask.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]


class LayerSplit:
    """The model's layers in two parts at decoder layer ``first`` (0 < first <= L); see module docstring.

    Raises ``ValueError`` naming the reason when the model cannot be split (:func:`split_unsupported`).
    """

    def __init__(self, model, first: int):
        reason = split_unsupported(model)
        if reason:
            raise ValueError(f"cannot split {type(model).__name__} into trunk and top: {reason}")
        self.model, self.base = model, model.model
        self.num_layers = len(self.base.layers)
        if not 0 < first <= self.num_layers:
            raise ValueError(f"trunk end {first} must be in [1, {self.num_layers}]")
        self.first = first

    @property
    def trunk_layers(self) -> range:
        """Indices of the trunk's decoder layers."""
        return range(self.first)

    @property
    def top_layers(self) -> range:
        """Indices of the top's decoder layers."""
        return range(self.first, self.num_layers)

    def embed(self, ids: Tensor) -> Tensor:
        """Input embeddings [rows, columns, hidden] of token ids."""
        return self.base.embed_tokens(ids)

    def run(
        self, hidden: Tensor, layers: range, key_mask: Tensor, positions: Tensor, cache: SegmentedCache
    ) -> Tensor:
        """Hidden states after ``layers`` for the new columns ``hidden`` [rows, q, hidden]; ``key_mask``
        [rows, cached + q] marks the real columns the rows attend to, ``positions`` [rows, q] the new
        columns' positions; the new keys / values land in ``cache.new``."""
        mask = causal_mask(key_mask, hidden.shape[1], hidden.dtype)
        position_embeddings = self.base.rotary_emb(hidden, position_ids=positions)
        for index in layers:
            out = self.base.layers[index](
                hidden,
                attention_mask=mask,
                position_ids=positions,
                position_embeddings=position_embeddings,
                use_cache=True,
                cache=cache,
            )
            hidden = out[0] if isinstance(out, tuple) else out
        return hidden

    def head(self, hidden: Tensor, token_ids: Sequence[int] | None = None) -> Tensor:
        """Logits [rows, vocab] (or only of ``token_ids``) of hidden states [rows, hidden] after the top."""
        return self.output(self.base.norm(hidden), token_ids)

    def normalize(self, hidden: Tensor) -> Tensor:
        """The final norm of hidden states after the top (the output layer's input)."""
        return self.base.norm(hidden)

    def output(self, normed: Tensor, token_ids: Sequence[int] | None = None) -> Tensor:
        """Logits of normalized hidden states (all, or only ``token_ids``)."""
        head: nn.Linear = self.model.lm_head
        if token_ids is None:
            return head(normed)
        ids = torch.as_tensor(list(token_ids), device=normed.device)
        bias = head.bias[ids] if head.bias is not None else None
        return nn.functional.linear(normed, head.weight[ids], bias)

    @functools.cached_property
    def output_norms(self) -> Tensor:
        """L2 norm of each row of the output layer's weight [vocab] (float32): logit v moves by at most this
        times the L2 change of its input (Cauchy–Schwarz). Computed once: the output layer must not change
        while this split is used."""
        return self.model.lm_head.weight.detach().float().norm(dim=1)
