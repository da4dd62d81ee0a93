"""Iterative fine-tuning between ICM chunks (upstream README): fine-tune the initial model on the labels of
chunks 1..j to get M_j, and label chunk j+1 with M_j.

The labels become prompt-completion rows (``{"prompt": <claim prompt>, "completion": " True"}``), written
atomically under the run directory, and a fine-tune function turns (initial model, rows) into a new model
spec. The default is metalight's ``SFTModule`` (``metalight.methods.icm.sft_finetune.sft_fine_tune``); the
function is named by a dotted path so a run can swap it for its own trainer.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from metalight.errors import ConfigError
from metalight.io import atomic_write_jsonl
from metalight.prompts import ICM_LABEL_WORDS

FineTuneFn = Callable[[str, Path, Path, "IterativeFineTuning"], str]


@dataclass(frozen=True)
class IterativeFineTuning:
    """Settings of the fine-tuning between chunks.

    Args:
        function: dotted path of ``f(initial_model, rows_path, output_dir, settings) -> model spec``; the
            default trains with ``SFTModule``.
        max_epochs: passes over the labelled rows.
        lr: AdamW learning rate (constant: no schedule).
        batch_size: rows per optimizer step.
        lora: train a LoRA adapter (merged into the exported model) instead of all weights.
        max_length: longest training row in tokens (a prompt holds one claim).
        dtype: dtype the model is trained in (``None``: the ICM run's ``dtype``).
        seed: seed of the row order.
    """

    function: str | None = "metalight.methods.icm.sft_finetune.sft_fine_tune"
    max_epochs: int = 1
    lr: float = 1.0e-5
    batch_size: int = 8
    lora: bool = False
    max_length: int = 1024
    dtype: str | None = None
    seed: int = 0


def sft_rows(
    prompts: Sequence[str], labels: Sequence[int | None], label_words: Sequence[str] = ICM_LABEL_WORDS
) -> list[dict[str, str]]:
    """Prompt-completion rows of the labelled claims: the completion is the label word after a space."""
    return [
        {"prompt": prompt, "completion": f" {label_words[0] if label else label_words[1]}"}
        for prompt, label in zip(prompts, labels)
        if label is not None
    ]


def resolve_function(path: str | None) -> FineTuneFn:
    """Import ``package.module.function``; ``ConfigError`` naming the key when it cannot be found."""
    if not path:
        raise ConfigError(
            "finetune.function is not set: give the dotted path of a function "
            "f(initial_model, rows_path, output_dir, settings) -> model spec"
        )
    module_name, _, name = path.rpartition(".")
    try:
        function = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(
            f"finetune.function {path!r} cannot be imported ({err}); give a dotted path to "
            f"f(initial_model, rows_path, output_dir, settings) -> model spec"
        ) from err
    if not callable(function):
        raise ConfigError(f"finetune.function {path!r} is not callable")
    return function


def fine_tune_on_labels(
    settings: IterativeFineTuning,
    initial_model: str,
    rows: list[dict[str, str]],
    work_dir: Path,
    round_index: int,
) -> str:
    """Write ``rows`` to ``work_dir/finetune/round<k>/rows.jsonl`` and fine-tune ``initial_model`` on them;
    returns the new model's spec."""
    if not rows:
        raise ConfigError(
            "iterative fine-tuning got no labelled claims; the previous chunks labelled nothing"
        )
    round_dir = Path(work_dir) / "finetune" / f"round{round_index}"
    rows_path = atomic_write_jsonl(round_dir / "rows.jsonl", rows)
    return str(resolve_function(settings.function)(initial_model, rows_path, round_dir, settings))
