"""Per-token axis scores of a probe run's held-out examples (upstream ``last_assistant_to_eos_each``).

Each assistant-response token's residual state is scored on the run's axes, without pooling: the rows show
where inside a sentence the activation along an axis rises or falls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from metalight.methods.probes.axes import axis_scores
from metalight.methods.probes.experiments.common import ProbeRun
from metalight.methods.probes.extraction import extract_token_rows, statement_span_text
from metalight.methods.probes.labels import binarize


def token_score_rows(
    model, tokenizer, run: ProbeRun, configs: Sequence[tuple[int, str]], batch_size: int = 16
) -> list[dict[str, Any]]:
    """One row ``{id, position, token, layer, axis, score, label}`` per held-out response token and
    ``(layer, axis)``; ``position`` counts from the response's first token, ``label`` is the binarized
    score."""
    system = run.probes.meta.get("system_prompt")
    items = [statement_span_text(tokenizer, e.user_prompt, e.response, system) for e in run.examples]
    layers = sorted({layer for layer, _ in configs})
    tokens = extract_token_rows(model, tokenizer, items, layers, batch_size)
    owners = tokens.item.tolist()
    positions = [i - first for i, first in enumerate(_first_rows(owners))]
    texts = [tokenizer.decode([t]) for t in tokens.token_id.tolist()]
    rows = []
    for layer, axis in configs:
        li, ai = run.probes.index(layer, axis)
        scores = axis_scores(
            tokens.features[layer], run.probes.directions[li], run.probes.offsets[li], run.probes.scales[li]
        )[:, ai]
        rows += [
            {
                "id": run.examples[owner].id,
                "position": position,
                "token": text,
                "layer": layer,
                "axis": axis,
                "score": float(score),
                "label": int(label),
            }
            for owner, position, text, score, label in zip(owners, positions, texts, scores, binarize(scores))
        ]
    return rows


def _first_rows(owners: Sequence[int]) -> list[int]:
    """For each row, the index of the first row of the same item (rows of one item are contiguous)."""
    firsts, start = [], 0
    for i, owner in enumerate(owners):
        if i and owner != owners[i - 1]:
            start = i
        firsts.append(start)
    return firsts
