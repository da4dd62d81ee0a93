"""The README's main job on a fresh machine: show a model learning to know what it knows.

The embedded SmolLM2-135M-Instruct answers held-out questions of the competence-band testbed (arithmetic facts
no training run sees: metalight.data.sources.competence) with the dual-prompt protocol, is fine-tuned with the
arm that learned fastest per CPU minute in ``docs/esma.md``'s comparison, and answers the same questions
again. It prints accuracy and mean P(yes) per difficulty level, before / after with 95% bootstrap intervals,
the paired change with its permutation p-value, a verdict line, and the same on the testbed's other family
(spelling: never trained on) as the transfer line. Everything (report.json, samples, checkpoints, the
per-level figure, TensorBoard logs) lands under runs/.

    python scripts/quickstart.py                 # before, training, after, transfer
    python scripts/quickstart.py --skip-training # only the before measurement
    python scripts/quickstart.py --trainer.max_steps 4   # any other argument goes to every cli.py call
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

from metalight.callbacks.report_writer import run_dir
from metalight.cli import main as cli
from metalight.evaluation.intervals import change_table, held_out_intervals, learning_verdict, paired_change
from metalight.evaluation.levels import format_levels, level_stats
from metalight.report.levels import log_levels, plot_levels

CONFIG = "configs/competence/demo.yaml"
TRANSFER = [
    "--data.init_args.families",
    "[spelling]",
    "--data.init_args.per_level",
    "{train: 0, val: 0, test: 30}",
]


def samples(run, split: str = "test") -> list[SimpleNamespace]:
    """The per-question answers a CLI run wrote (``samples/<split>.jsonl``)."""
    path = run_dir(run.trainer) / "samples" / f"{split}.jsonl"
    return [
        SimpleNamespace(**json.loads(line)) for line in Path(path).read_text().splitlines() if line.strip()
    ]


def held_out(common: list[str], name: str, extra: list[str] = ()) -> list[SimpleNamespace]:
    """``cli.py test`` on the testbed's held-out split; returns its per-question answers."""
    return samples(cli(["test", *common, *extra, "--trainer.logger.init_args.name", name]))


def transfer_line(before: list[SimpleNamespace], after: list[SimpleNamespace]) -> str:
    """AUROC₂ and accuracy on the family nobody trained on, before → after with the paired p."""
    change = paired_change(before, after)
    b, a = held_out_intervals(before), held_out_intervals(after)
    parts = [
        f"{label} {b[key].value:.3f} -> {a[key].value:.3f} ({change[key].value:+.3f}, p = "
        f"{change[key].p_value:.3f})"
        for key, label in (("auroc_type2", "AUROC2"), ("accuracy", "accuracy"))
    ]
    return f"transfer (spelling, never trained on, n={len(after)}): " + "; ".join(parts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="metalight's main job: held-out before, training, after, "
        "transfer, with 95% intervals and a verdict"
    )
    parser.add_argument("--config", default=CONFIG, help=f"the training config (default {CONFIG})")
    parser.add_argument("--skip-training", action="store_true", help="only the before measurement")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    parser.add_argument(
        "--model", default=None, help="model spec (default: the config's, the embedded model)"
    )
    args, overrides = parser.parse_known_args(argv)
    common = ["--config", args.config, *overrides]
    if args.model:
        common += ["--model.init_args.model", args.model]
    start = time.perf_counter()
    before = held_out(common, "quickstart-before")
    if args.skip_training:
        print("\n" + format_levels(level_stats(before)))
        print(
            f"\nquickstart finished in {time.perf_counter() - start:.0f} s; browse the logs with: "
            f"tensorboard --logdir runs"
        )
        return
    before_transfer = held_out(common, "quickstart-before-spelling", TRANSFER)
    steps = [] if args.steps is None else ["--trainer.max_steps", str(args.steps)]
    trained_at = time.perf_counter()
    trained = cli(["fit", *common, *steps])
    checkpoint = trained.trainer.checkpoint_callback.last_model_path
    print(
        f"\ntraining: {trained.trainer.global_step} steps in {time.perf_counter() - trained_at:.0f} s; run: "
        f"{run_dir(trained.trainer)}"
    )
    after = held_out(common, "quickstart-after", ["--ckpt_path", checkpoint])
    after_transfer = held_out(common, "quickstart-after-spelling", [*TRANSFER, "--ckpt_path", checkpoint])

    levels_before, levels_after = level_stats(before), level_stats(after)
    out = run_dir(trained.trainer)
    figure = plot_levels(
        levels_before,
        levels_after,
        out / "levels.png",
        "held-out arithmetic: accuracy and mean P(yes) per level, before vs after training",
    )
    log_levels(out, levels_before, levels_after, trained.trainer.global_step)
    change = paired_change(before, after)
    print("\n" + format_levels(levels_before, levels_after))
    print(
        "\n"
        + change_table(
            held_out_intervals(before), held_out_intervals(after), change, len(after), title="after"
        )
    )
    print(transfer_line(before_transfer, after_transfer))
    print(learning_verdict(change))
    print(f"\nper-level figure: {figure}")
    print(
        f"quickstart finished in {time.perf_counter() - start:.0f} s; browse the logs with: "
        f"tensorboard --logdir runs"
    )


if __name__ == "__main__":
    main()
