"""Steering check: does the axis matter causally? (the intervention counterpart of the control experiment)

For each α, the model answers the held-out user prompts while α·s·u is added to the residual stream after
the probed block (u the unit axis, s its train std, so α is in score units); the replies are then re-read
*without* steering and scored on the same axis. If the axis carries what the model writes, the re-read score
rises with α. Effect: Cohen's d of the re-read scores at the largest vs the smallest α. Sampling uses the same
seed for every α, so the α conditions differ only by the intervention.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch

from metalight.methods.probes.axes import axis_scores
from metalight.methods.probes.experiments.common import ProbeRun, cohen_d
from metalight.methods.probes.extraction import extract_features, statement_span_text
from metalight.methods.probes.steering_hook import steer
from metalight.models.chat import render_prompt
from metalight.models.generation import Decoding, Prompt, generate
from metalight.prompts import NF_SYSTEM_PROMPT

log = logging.getLogger(__name__)


def run_steering(
    model,
    tokenizer,
    run: ProbeRun,
    layer: int,
    axis: str,
    alphas: Sequence[float] = (-8, 0, 8),
    samples: int = 16,
    seed: int = 42,
    max_new_tokens: int = 50,
    temperature: float = 0.7,
) -> dict[str, Any]:
    """Steer with each α, re-read the replies unsteered, and return per-α score statistics and the effect."""
    probes = run.probes
    direction, scale = probes.direction(layer, axis), probes.scale(layer, axis)
    system = probes.meta.get("system_prompt", NF_SYSTEM_PROMPT)
    users = sorted({e.user_prompt for e in run.examples})
    users = [users[i % len(users)] for i in range(samples)]
    prompts = [Prompt(*render_prompt(tokenizer, user, "auto", system)) for user in users]
    decoding = Decoding(max_new_tokens=max_new_tokens, strategy="sample", temperature=temperature)
    li, ai = probes.index(layer, axis)
    per_alpha = []
    for alpha in alphas:
        torch.manual_seed(seed)
        with steer(model, layer, direction, alpha * scale):
            replies = generate(model, tokenizer, prompts, decoding, max_input_tokens=None).texts
        kept = [(u, r) for u, r in zip(users, replies) if r.strip()]
        scores = []
        if kept:
            items = [statement_span_text(tokenizer, u, r, system) for u, r in kept]
            features = extract_features(model, tokenizer, items, [layer])[layer]
            scores = axis_scores(features, probes.directions[li], probes.offsets[li], probes.scales[li])
            scores = scores[:, ai].tolist()
        per_alpha.append(
            {
                "alpha": alpha,
                "n": len(scores),
                "empty_replies": len(replies) - len(kept),
                "mean_score": sum(scores) / len(scores) if scores else math.nan,
                "label_1_rate": sum(s >= 0 for s in scores) / len(scores) if scores else math.nan,
                "scores": scores,
                "examples": replies[:3],
            }
        )
        log.info(
            "steering layer %d %s alpha %+.1f: mean re-read score %.3f",
            layer,
            axis,
            alpha,
            per_alpha[-1]["mean_score"],
        )
    low, high = min(per_alpha, key=lambda r: r["alpha"]), max(per_alpha, key=lambda r: r["alpha"])
    d, ci = cohen_d(high["scores"], low["scores"])
    return {
        "layer": layer,
        "axis": axis,
        "axis_std": scale,
        "samples": samples,
        "d": d,
        "ci95": ci,
        "alphas": per_alpha,
    }
