"""The honest CPU result of docs/judgment.md: judgment AUROC on held-out questions before / after 2 epochs.

Runs ``cli.py fit --config configs/judgment/quickstart.yaml`` (embedded SmolLM2-135M-Instruct, FanOutQA
single-hop, full fine-tuning) at the chosen size, then writes docs/results/judgment_cpu.{json,md,png} and
replaces the results block of docs/judgment.md with the table.

    python scripts/judgment_cpu_result.py            # 200 train / 200 held-out questions, 2 epochs
    python scripts/judgment_cpu_result.py --quick    # 8 / 8 questions, short answers: a check, not a result
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from metalight.cli import main as cli_main
from metalight.io import atomic_write_json, atomic_write_text
from metalight.methods.judgment.scores import summary_table
from metalight.report.runs import replace_section

CONFIG = "configs/judgment/quickstart.yaml"
RESULTS = Path("docs/results")
DOC = Path("docs/judgment.md")
START, END = "<!-- judgment-cpu-results:start -->", "<!-- judgment-cpu-results:end -->"


def run(args, save_dir: str) -> tuple[dict, float]:
    """One fit; returns (report, wall seconds)."""
    overrides = [
        "--trainer.logger.init_args.save_dir",
        save_dir,
        "--trainer.max_epochs",
        str(args.epochs),
        "--data.init_args.source.init_args.max_samples",
        json.dumps({"train": args.train, "val": args.val}),
        "--trainer.callbacks.init_args.answers.max_new_tokens",
        str(args.answer_tokens),
        "--trainer.callbacks.init_args.judgment.max_new_tokens",
        str(args.judgment_tokens),
        "--trainer.callbacks.init_args.train_on",
        args.train_on,
    ]
    start = time.perf_counter()
    cli_main(["fit", "--config", CONFIG, *overrides])
    wall = time.perf_counter() - start
    (report_path,) = Path(save_dir).rglob("report.json")
    return json.loads(report_path.read_text()), wall


def plot(rounds: list[dict], path: Path) -> None:
    """Judgment AUROC and accuracy per round, train and held-out val."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [r["epoch"] for r in rounds]
    for ax, key, title in (
        (axes[0], "judgment_auroc", "judgment AUROC (P(yes) vs can)"),
        (axes[1], "judgment_accuracy", "judgment accuracy"),
    ):
        for split in ("train", "val"):
            values = [r.get(split, {}).get(key, float("nan")) for r in rounds]
            ax.plot(epochs, values, marker="o", label=split)
        ax.set_xlabel("round (epochs trained)")
        ax.set_title(title)
        ax.set_xticks(epochs)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def markdown(result: dict) -> str:
    """The results block for docs/judgment.md."""
    rounds = result["rounds"]
    first, last = rounds[0].get("val", {}), rounds[-1].get("val", {})
    lines = [
        f"Command: `{result['command']}` ({result['wall_minutes']:.1f} min on {result['machine']}, "
        f"{result['date']}).",
        "",
        f"Held-out judgment AUROC {first.get('judgment_auroc', float('nan')):.3f} before training -> "
        f"{last.get('judgment_auroc', float('nan')):.3f} after {rounds[-1]['epoch']} epochs "
        f"({result['settings']['train']} train / {result['settings']['val']} held-out FanOutQA "
        f"questions).",
        "",
        "```",
        result["table"],
        "```",
        "",
        f"Held-out label distribution after training: actual can {last.get('label_frac_can', 0):.1%}, "
        f"predicted can {last.get('pred_frac_can', 0):.1%}; unparsed judgments "
        f"{last.get('judgment_unparsed_rate', 0):.1%}. Plot: `docs/results/judgment_cpu.png`.",
    ]
    if result["settings"]["quick"]:
        lines.insert(0, "**`--quick` check only (tiny sizes): not a result.**\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=200)
    parser.add_argument("--val", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--answer-tokens", type=int, default=64, help="Know-thyself: 64")
    parser.add_argument("--judgment-tokens", type=int, default=32, help="Know-thyself: 32")
    parser.add_argument("--train-on", choices=["wrong", "all"], default="all")
    parser.add_argument("--quick", action="store_true", help="8 / 8 questions, 16 / 12 tokens")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.quick:
        args.train, args.val, args.answer_tokens, args.judgment_tokens = 8, 8, 16, 12
    torch.set_num_threads(args.threads)
    from metalight.benchmarking import invocation, machine

    with tempfile.TemporaryDirectory() as tmp:
        report, wall = run(args, tmp)
    judgment = report["judgment"]
    result = {
        "command": invocation(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "wall_minutes": wall / 60,
        "settings": vars(args),
        "config": CONFIG,
        "rounds": judgment["rounds"],
        "table": summary_table(judgment["rounds"]),
        "loop_settings": judgment["settings"],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "judgment_cpu.json", result)
    block = markdown(result)
    atomic_write_text(RESULTS / "judgment_cpu.md", block + "\n")
    plot(judgment["rounds"], RESULTS / "judgment_cpu.png")
    replace_section(DOC, START, END, block + "\n", required=False)
    print(block)


if __name__ == "__main__":
    main()
