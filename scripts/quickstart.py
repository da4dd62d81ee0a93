"""The README's main job on a fresh machine: measure the embedded SmolLM2-135M-Instruct on held-out real
questions (FanOutQA single-hop validation split, read from the installed package), fine-tune it with the
method that learned fastest in ``docs/esma.md``'s CPU comparison, measure the same questions again, and print
before / after with 95% bootstrap intervals and whether the change is significant. Everything (report.json,
samples, checkpoints, TensorBoard logs) lands under runs/.

    python scripts/quickstart.py                 # baseline + training + held-out evaluation
    python scripts/quickstart.py --skip-training # only the baseline measurement
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace

from metalight.callbacks.report_writer import run_dir
from metalight.cli import main as cli
from metalight.evaluation.intervals import change_table, held_out_intervals, paired_change

CONFIG = "configs/esma/demo.yaml"


def samples(run) -> list[SimpleNamespace]:
    """The per-question validation answers a CLI run wrote (``samples/val.jsonl``)."""
    path = run_dir(run.trainer) / "samples" / "val.jsonl"
    return [SimpleNamespace(**json.loads(line)) for line in Path(path).read_text().splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="metalight's main job: baseline, training, before/after with "
                                                 "95% intervals")
    parser.add_argument("--config", default=CONFIG, help=f"the training config (default {CONFIG})")
    parser.add_argument("--skip-training", action="store_true", help="only the baseline measurement")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the config's)")
    parser.add_argument("--model", default=None, help="model spec (default: the config's, the embedded model)")
    parser.add_argument("--heldout", type=int, default=None, help="held-out questions (default: the config's 200)")
    args = parser.parse_args(argv)
    common = ["--config", args.config]
    if args.model:
        common += ["--model.init_args.model", args.model]
    if args.heldout:
        common += ["--data.init_args.max_samples.val", str(args.heldout)]
    start = time.perf_counter()
    # The untrained model through the training config's own validation: the same questions and prompts.
    baseline = cli(["validate", *common, "--trainer.logger.init_args.name", "quickstart-baseline"])
    if args.skip_training:
        print(f"\nquickstart finished in {time.perf_counter() - start:.0f} s; browse the logs with: "
              f"tensorboard --logdir runs")
        return
    steps = [] if args.steps is None else ["--trainer.max_steps", str(args.steps),
                                           "--trainer.val_check_interval", str(args.steps)]
    trained_at = time.perf_counter()
    trained = cli(["fit", *common, *steps])
    print(f"\ntraining: {trained.trainer.global_step} steps + held-out evaluation in "
          f"{time.perf_counter() - trained_at:.0f} s; run: {run_dir(trained.trainer)}")
    before, after = samples(baseline), samples(trained)
    print(change_table(held_out_intervals(before), held_out_intervals(after), paired_change(before, after),
                       len(after), title="after"))
    print(f"\nquickstart finished in {time.perf_counter() - start:.0f} s; browse the logs with: "
          f"tensorboard --logdir runs")


if __name__ == "__main__":
    main()
