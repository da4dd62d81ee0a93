"""Control experiment (upstream ``main_imitexp.py`` → ``neurofeedback.py::imitate_score_by_examples``).

Can a model *control* its activation along an axis? A trial samples N + 1 held-out examples. The chat is
system ``control_binary``, N examples as user prompt / ``{response} [Score: {label}]`` (neural labels of the
(layer, axis); with ``flip`` the shown labels are 1 − label), then "Now your are performing the imitation
task. You must imitate the behavior of label X ..." + the last example's user prompt. The reply is generated
(``active``: sampling, temperature 0.7, 50 tokens) or is that example's own response (``inactive``). Its
hidden states (mean over the reply) are scored on the same layer's axes.

Effect (upstream ``plot_imit.py``): target-high = mean(imitate 1 unflipped, imitate 0 flipped), target-low =
mean(imitate 0 unflipped, imitate 1 flipped); Cohen's d between them across trials. ``d_noflip`` and
``d_flip`` split it by condition: a model that follows the examples moves the score the same way in both; a
model reacting to the word "1" instead gives ``d_flip`` < 0. Off-target d: the same contrast on the layer's
other axes (upstream's "control precision").
"""

from __future__ import annotations

import logging
import math
import random
import zlib
from collections.abc import Sequence
from typing import Any, Literal

import torch

from metalight.errors import ConfigError
from metalight.methods.probes.axes import axis_scores
from metalight.methods.probes.experiments.common import ProbeRun, cohen_d
from metalight.methods.probes.experiments.self_report import nf_messages, require_chat_template
from metalight.methods.probes.extraction import chat_span_text, extract_features
from metalight.models.generation import Decoding, Prompt, generate
from metalight.prompts import NF_CONTROL_BINARY, NF_IMITATE

log = logging.getLogger(__name__)

Mode = Literal["inactive", "active"]
PAPER_N_EXAMPLES = (0, 2, 4, 8, 16, 32, 64, 128, 256)


def run_trials(
    model,
    tokenizer,
    run: ProbeRun,
    configs: Sequence[tuple[int, str]],
    n_examples: Sequence[int] = PAPER_N_EXAMPLES,
    trials: int = 10,
    modes: Sequence[Mode] = ("inactive", "active"),
    seed: int = 42,
    max_new_tokens: int = 50,
    temperature: float = 0.7,
) -> list[dict[str, Any]]:
    """One row per (trial, N, layer, axis, flip, imitate, mode): the reply's scores on the layer's axes.

    The N + 1 examples of (trial, N) are drawn with ``random.Random(f"{seed + trial}-{N}")``, the same for
    every layer, axis and mode (as upstream draws them once per experiment seed).
    """
    require_chat_template(tokenizer)
    if max(n_examples) + 1 > len(run.examples):
        raise ConfigError(
            f"N = {max(n_examples)} needs {max(n_examples) + 1} held-out examples; the run has "
            f"{len(run.examples)}"
        )
    decoding = Decoding(max_new_tokens=max_new_tokens, strategy="sample", temperature=temperature)
    rows = []
    for trial in range(trials):
        for n in n_examples:
            chosen = random.Random(f"{seed + trial}-{n}").sample(range(len(run.examples)), n + 1)
            held = run.examples[chosen[-1]]
            for layer, axis in configs:
                labels = run.neural_labels(layer, axis)
                for flip in (0, 1):
                    turns = [
                        (run.examples[i].user_prompt, run.examples[i].response, labels[i] ^ flip)
                        for i in chosen[:-1]
                    ]
                    messages = {
                        imitate: nf_messages(
                            NF_CONTROL_BINARY, turns, NF_IMITATE.format(label=imitate) + held.user_prompt
                        )
                        for imitate in (0, 1)
                    }
                    replies = {("inactive", i): held.response for i in (0, 1) if "inactive" in modes}
                    if "active" in modes:
                        prompts = [
                            Prompt(
                                tokenizer.apply_chat_template(
                                    messages[i], tokenize=False, add_generation_prompt=True
                                ),
                                True,
                            )
                            for i in (0, 1)
                        ]
                        torch.manual_seed(zlib.crc32(repr((seed, trial, n, layer, axis, flip)).encode()))
                        texts = generate(model, tokenizer, prompts, decoding, max_input_tokens=None).texts
                        replies.update({("active", i): text for i, text in zip((0, 1), texts)})
                    scored = score_replies(model, tokenizer, run, layer, messages, replies)
                    rows += [
                        {
                            "trial": trial,
                            "n_examples": n,
                            "layer": layer,
                            "axis": axis,
                            "flip": flip,
                            "imitate": imitate,
                            "mode": mode,
                            "scores": scores,
                            **({"reply": replies[(mode, imitate)]} if mode == "active" else {}),
                        }
                        for (mode, imitate), scores in scored.items()
                    ]
        log.info("control trial %d/%d done", trial + 1, trials)
    return rows


def score_replies(
    model,
    tokenizer,
    run: ProbeRun,
    layer: int,
    messages: dict[int, list[dict[str, str]]],
    replies: dict[tuple[str, int], str],
) -> dict[tuple[str, int], list[float]]:
    """Scores on every axis of ``layer`` of each reply read in its chat (NaN for an empty generation)."""
    keys = [key for key, text in replies.items() if text.strip()]
    out = {key: [math.nan] * len(run.probes.axes) for key in replies}
    if not keys:
        return out
    items = [
        chat_span_text(tokenizer, messages[imitate], replies[(mode, imitate)], close_turn=False)
        for mode, imitate in keys
    ]
    features = extract_features(model, tokenizer, items, [layer], "response", prefix_cache=True)[layer]
    li = run.probes.layers.index(layer)
    scores = axis_scores(features, run.probes.directions[li], run.probes.offsets[li], run.probes.scales[li])
    out.update({key: row.tolist() for key, row in zip(keys, scores)})
    return out


def summarise_control(rows: Sequence[dict[str, Any]], axes: Sequence[str]) -> list[dict[str, Any]]:
    """Cohen's d (target-high vs target-low across trials) per (layer, axis, N, mode), with the unflipped and
    flipped halves and the off-target effect on the layer's other axes."""
    table: dict[tuple, dict[tuple[int, int], dict[int, list[float]]]] = {}
    for row in rows:
        key = (row["layer"], row["axis"], row["n_examples"], row["mode"])
        cell = table.setdefault(key, {}).setdefault((row["flip"], row["imitate"]), {})
        cell[row["trial"]] = row["scores"]
    results = []
    for (layer, axis, n, mode), cells in sorted(table.items()):
        trials = sorted(set.intersection(*(set(c) for c in cells.values())))

        def values(flip: int, imitate: int, axis_index: int, cells=cells, trials=trials) -> list[float]:
            return [cells[(flip, imitate)][t][axis_index] for t in trials]

        def contrast(axis_index: int) -> dict[str, float]:
            high = [(a + b) / 2 for a, b in zip(values(0, 1, axis_index), values(1, 0, axis_index))]
            low = [(a + b) / 2 for a, b in zip(values(0, 0, axis_index), values(1, 1, axis_index))]
            d, ci = cohen_d(high, low)
            return {"d": d, "ci95": ci, "mean_high": _mean(high), "mean_low": _mean(low)}

        target = axes.index(axis)
        main = contrast(target)
        results.append(
            {
                "layer": layer,
                "axis": axis,
                "n_examples": n,
                "mode": mode,
                "trials": len(trials),
                **main,
                "d_noflip": cohen_d(values(0, 1, target), values(0, 0, target))[0],
                "d_flip": cohen_d(values(1, 0, target), values(1, 1, target))[0],
                "off_target_d": {other: contrast(i)["d"] for i, other in enumerate(axes) if other != axis},
                "empty_replies": sum(math.isnan(s[target]) for c in cells.values() for s in c.values()),
            }
        )
    return results


def _mean(values: Sequence[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan
