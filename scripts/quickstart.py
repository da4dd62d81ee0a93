"""The README's main job on a fresh machine: measure the embedded SmolLM2-135M-Instruct on held-out real
questions (FanOutQA single-hop, read from the installed package), fine-tune it briefly with ESMA, measure
the same held-out questions again, and print the numbers before and after. Everything (report.json,
samples, checkpoints, TensorBoard logs) lands under runs/.

    python scripts/quickstart.py                 # baseline + ESMA + held-out evaluation
    python scripts/quickstart.py --skip-esma     # = python cli.py validate --config configs/quickstart.yaml
"""

from __future__ import annotations

import argparse
import json
import time

from metalight.callbacks.report_writer import run_dir
from metalight.cli import main as cli

COMPARED = (("dprime_type2", "d'type2"), ("auroc_type2", "AUROC2"), ("accuracy", "accuracy"),
            ("raw_alignment", "raw alignment"), ("yes_ratio", "yes ratio"))


def report_of(run) -> dict:
    """The ``report.json`` a CLI run wrote."""
    return json.loads((run_dir(run.trainer) / "report.json").read_text())


def comparison(before: dict, after: dict) -> str:
    """A before / after table of the held-out metrics."""
    lines = [f"{'held-out (n=' + str(after['n']) + ')':<22}{'before':>9}{'after ESMA':>12}{'change':>9}"]
    for key, label in COMPARED:
        lines.append(f"{label:<22}{before[key]:>9.3f}{after[key]:>12.3f}{after[key] - before[key]:>+9.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="metalight's main job: baseline, ESMA, before/after")
    parser.add_argument("--skip-esma", action="store_true", help="only the baseline evaluation")
    parser.add_argument("--esma-steps", type=int, default=None, help="ES iterations (default: the config's)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    baseline = cli(["validate", "--config", "configs/quickstart.yaml"])
    if args.skip_esma:
        print(f"\nquickstart finished in {time.perf_counter() - start:.0f} s; browse the logs with: "
              f"tensorboard --logdir runs")
        return
    steps = [] if args.esma_steps is None else ["--trainer.max_steps", str(args.esma_steps),
                                                "--trainer.val_check_interval", str(args.esma_steps)]
    trained_at = time.perf_counter()
    esma = cli(["fit", "--config", "configs/esma/quickstart.yaml", *steps])
    print(f"\nESMA: {esma.trainer.global_step} iterations + held-out evaluation in "
          f"{time.perf_counter() - trained_at:.0f} s; run: {run_dir(esma.trainer)}")
    print(comparison(report_of(baseline), report_of(esma)))
    print(f"\nquickstart finished in {time.perf_counter() - start:.0f} s; browse the logs with: "
          f"tensorboard --logdir runs")


if __name__ == "__main__":
    main()
