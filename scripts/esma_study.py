"""ESMA's honest CPU result: `esma` (full-rank noise, member by member, upstream's loop) vs `lowrank`
(EGGROLL noise, batched engine) on the embedded model with the same wall-clock budget each.

For each arm: train ``configs/esma/quickstart.yaml`` (only the noise scheme and engine differ) until the
budget runs out (Lightning ``max_time``), then evaluate the same held-out questions as the baseline. Writes
``<out>/results.json``, ``<out>/reward_curves.png``, ``<out>/results.md``, and the table into the study
section of ``docs/esma.md``.

    python scripts/esma_study.py --budget-minutes 15        # ~15 min per arm + 3 evaluations (~45 min)
    python scripts/esma_study.py --budget-minutes 1 --heldout 20 --out /tmp/study   # checks the script
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

from metalight.benchmarking import invocation, machine
from metalight.callbacks.report_writer import run_dir
from metalight.cli import main as cli
from metalight.io import atomic_write_json, atomic_write_text
from metalight.report.runs import read_scalars, replace_section
from metalight.report.tables import markdown_rows

ARMS = {
    "esma": [
        "--model.init_args.noise",
        "esma",
        "--model.init_args.engine.population",
        "sequential",
        "--model.init_args.antithetic",
        "false",
    ],
    "lowrank": ["--model.init_args.noise", "lowrank", "--model.init_args.engine.population", "batched"],
}
METRICS = ("dprime_type2", "auroc_type2", "accuracy", "raw_alignment", "yes_ratio")
CURVE_TAGS = ("train/reward", "train/correctness", "train/alignment", "train/yes_ratio")
DOC, BEGIN, END = Path("docs/esma.md"), "<!-- study:begin -->", "<!-- study:end -->"


def scalars(run: Path, tags=CURVE_TAGS) -> dict[str, list[tuple[float, int, float]]]:
    """(wall time, step, value) of each logged scalar tag in a TensorBoard run directory."""
    return read_scalars(run, tuple(tags))


def run_arm(name: str, budget_minutes: float, heldout: int, save_dir: str) -> dict:
    """Train one arm for the budget, evaluate the held-out questions, return its curve and metrics."""
    minutes = int(budget_minutes)
    seconds = round((budget_minutes - minutes) * 60)
    start = time.time()
    run = cli(
        [
            "fit",
            "--config",
            "configs/esma/quickstart.yaml",
            *ARMS[name],
            "--trainer.max_steps",
            "-1",
            "--trainer.max_time",
            f"00:00:{minutes:02d}:{seconds:02d}",
            "--trainer.val_check_interval",
            "1000000",
            "--trainer.log_every_n_steps",
            "1",
            "--data.init_args.max_samples.val",
            str(heldout),
            "--trainer.logger.init_args.save_dir",
            save_dir,
            "--trainer.logger.init_args.name",
            f"study-{name}",
        ]
    )
    trained = time.time() - start
    run.trainer.validate(run.model, datamodule=run.datamodule)
    directory = run_dir(run.trainer)
    report = json.loads((directory / "report.json").read_text())
    curves = {
        tag: [(t - start, step, value) for t, step, value in points]
        for tag, points in scalars(directory).items()
    }
    steps = run.trainer.global_step
    return {
        "run": str(directory),
        "iterations": steps,
        "train_seconds": trained,
        "seconds_per_iteration": trained / max(steps, 1),
        "heldout": {k: report[k] for k in METRICS},
        "curves": curves,
    }


def baseline(heldout: int, save_dir: str) -> dict:
    """Held-out metrics of the untrained model (the quickstart's evaluation)."""
    run = cli(
        [
            "validate",
            "--config",
            "configs/quickstart.yaml",
            "--data.init_args.max_samples.val",
            str(heldout),
            "--trainer.logger.init_args.save_dir",
            save_dir,
            "--trainer.logger.init_args.name",
            "study-baseline",
        ]
    )
    report = json.loads((run_dir(run.trainer) / "report.json").read_text())
    return {k: report[k] for k in METRICS} | {"n": report["n"]}


def plot(results: dict, path: Path) -> None:
    """Reward (and its moving average over 5 iterations) against wall-clock minutes, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, arm in results["arms"].items():
        for axis, tag in zip(axes, ("train/reward", "train/alignment")):
            points = arm["curves"].get(tag, [])
            if not points:
                continue
            minutes = [t / 60 for t, _, _ in points]
            values = [v for _, _, v in points]
            smooth = [
                sum(values[max(0, i - 4) : i + 1]) / len(values[max(0, i - 4) : i + 1])
                for i in range(len(values))
            ]
            (line,) = axis.plot(minutes, smooth, label=f"{name} (5-iteration mean)")
            axis.plot(minutes, values, ".", color=line.get_color(), alpha=0.35)
            axis.set_xlabel("wall-clock minutes")
            axis.set_ylabel(tag)
    axes[0].legend()
    fig.suptitle(
        f"ESMA on the embedded SmolLM2-135M, {results['budget_minutes']:g} min per arm "
        f"({results['machine']})",
        fontsize=9,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(results: dict) -> str:
    """Markdown: per arm, iterations in the budget and held-out metrics before -> after."""
    before = results["baseline"]
    header = ["arm", "iterations", "s / iteration", *(f"{m} before → after" for m in METRICS[:3])]
    rows = [
        [
            f"`{name}`",
            arm["iterations"],
            f"{arm['seconds_per_iteration']:.1f}",
            *(f"{before[m]:.3f} → {arm['heldout'][m]:.3f}" for m in METRICS[:3]),
        ]
        for name, arm in results["arms"].items()
    ]
    return markdown_rows(header, rows)


def markdown(results: dict, png: Path) -> str:
    """The study section: settings, table and plot."""
    return (
        f"Measured {results['date']} on {results['machine']}, "
        f"{results['budget_minutes']:g} minutes of training "
        f"per arm, held-out n = {results['baseline']['n']} FanOutQA single-hop questions "
        f"(`{results['command']}`).\n\n{table(results)}\n\n![reward curves]({png.as_posix()})\n"
    )


def write_doc_section(text: str, doc: Path = DOC) -> None:
    """Replace the text between the study markers of ``docs/esma.md`` (nothing when the doc has none)."""
    replace_section(doc, BEGIN, END, text, required=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget-minutes", type=float, default=15.0, help="training wall-clock per arm")
    parser.add_argument(
        "--heldout", type=int, default=200, help="held-out questions evaluated before / after"
    )
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", default="docs/esma_study", help="directory for results.json / .md / .png")
    parser.add_argument("--save-dir", default="runs", help="where the runs' logs and checkpoints go")
    args = parser.parse_args()
    out = Path(args.out)
    command = invocation()
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        "command": command,
        "budget_minutes": args.budget_minutes,
        "config": "configs/esma/quickstart.yaml",
        "baseline": baseline(args.heldout, args.save_dir),
        "arms": {},
    }
    for name in args.arms:
        results["arms"][name] = run_arm(name, args.budget_minutes, args.heldout, args.save_dir)
        atomic_write_json(out / "results.json", results)
    plot(results, out / "reward_curves.png")
    text = markdown(results, Path("reward_curves.png"))  # linked from results.md beside it
    atomic_write_text(out / "results.md", text)
    if out == Path("docs/esma_study"):
        write_doc_section(markdown(results, Path("esma_study/reward_curves.png")))
    print(text)


if __name__ == "__main__":
    main()
