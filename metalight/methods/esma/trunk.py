"""The population's shared trunk: what every member computes the same.

When every perturbed parameter lives in decoder layers >= ``first`` (``layers: [first, stop)`` with
``first > 0``), the embeddings and layers [0, first) — the trunk — have the same weights for every member, so
on the same prompt tokens they give every member the same hidden states and KV cache. :class:`SharedTrunk`
computes them once per iteration (the first member group asks, the others reuse them) and the engine runs only
layers [first, L) per member (:mod:`metalight.models.shared_prompts`,
:mod:`metalight.models.split_decoding`). The answers are those of the unshared engine (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

from metalight.methods.esma.noise import NoiseScheme
from metalight.methods.esma.selection import layer_index
from metalight.models.layer_split import LayerSplit, split_unsupported
from metalight.models.shared_prompts import PromptStates, trunk_states


def trunk_end(scheme: NoiseScheme) -> int:
    """The first decoder layer with a perturbed parameter: the trunk is layers [0, that); 0 (nothing shared)
    when a perturbed parameter lies outside the decoder layers (embeddings, final norm, output layer)."""
    indices = [layer_index(scheme.selected[i].name) for i in scheme.perturbed_indices()]
    return 0 if any(i is None for i in indices) else min(indices)


def shared_layers(model, scheme: NoiseScheme) -> int:
    """How many decoder layers a population under ``scheme`` shares on ``model`` (0: none, or the model's
    layers cannot be run in parts: :func:`metalight.models.layer_split.split_unsupported`)."""
    first = trunk_end(scheme)
    return first if first > 0 and split_unsupported(model) is None else 0


class SharedTrunk:
    """The trunk's states on one iteration's prompts, computed on first use and reused while the prompts
    are the same (one set kept: an iteration's questions).

    Args:
        model: the model (its layers [0, first) must be the same for every member).
        first: the trunk's end, ``shared_layers(model, scheme)`` (> 0).
    """

    def __init__(self, model, first: int):
        self.split = LayerSplit(model, first)
        self._key: tuple | None = None
        self._states: PromptStates | None = None

    def states(self, prompts: Sequence[Sequence[int]], pad_id: int, share_prefixes: bool) -> PromptStates:
        """The trunk's states of ``prompts`` (token ids), from memory when they were asked for last."""
        key = (tuple(tuple(p) for p in prompts), pad_id, share_prefixes)
        if key != self._key:
            self._states = None  # free the previous prompts' states before computing the next
            self._states = trunk_states(self.split, prompts, pad_id, share_prefixes)
            self._key = key
        return self._states
