"""The embedded model evaluated with every confidence source on the shipped FanOutQA val split.

Full run (fills the results section of docs/evaluation.md and docs/results/confidence_sources.*):
    python scripts/eval_confidence_sources.py
Reduced check (writes under runs/confidence-sources-quick/ only, never into docs/):
    python scripts/eval_confidence_sources.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from datetime import date
from pathlib import Path

from metalight.benchmarking import invocation
from metalight.cli.multirun import run_cli
from metalight.evaluation.sources import SOURCES
from metalight.io import atomic_write_json, atomic_write_text
from metalight.report.runs import replace_section
from metalight.report.tables import sources_table

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "evaluation.md"
START, END = "<!-- confidence-sources:start -->", "<!-- confidence-sources:end -->"
QUICK_QUESTIONS = 24


def results_markdown(report: dict, wall_s: float, command: str) -> str:
    """The results section: the run's context, the one table, and the IDK prompt's own numbers."""
    idk = ""
    if "idk/abstention_rate" in report:
        idk = (
            "\nThe IDK prompt's own answers: abstention rate "
            f"{report['idk/abstention_rate']:.3f}, accuracy of "
            f"the answered ones {report['idk/answered_accuracy']:.3f}, accuracy over all questions "
            f"{report['idk/prompt_accuracy']:.3f}.\n"
        )
    return (
        f"Model `{report['model']}`, {report['dataset']}, split `{report['split']}`, n = {report['n']} "
        f"questions, direct-answer accuracy {report['accuracy']:.3f} (grading `{report['grading']}`). "
        f"Wall time {wall_s / 60:.1f} min on {os.cpu_count()} CPU cores ({platform.processor() or 'cpu'}), "
        f"{date.today().isoformat()}; command: `{command}`.\n\n{sources_table(report)}\n{idk}\n"
        f"![type-2 ROC of every source](results/confidence_sources_type2_roc.png)\n"
        f"![reliability of the probability sources](results/confidence_sources_reliability.png)\n"
        f"![confidence by outcome](results/confidence_sources_confidence_hist.png)\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_QUESTIONS} questions, results under runs/confidence-sources-quick/ only",
    )
    parser.add_argument(
        "--save-dir", default="runs", help="where the evaluation run is logged (default: runs)"
    )
    args = parser.parse_args()
    name = "confidence-sources-quick" if args.quick else "confidence-sources"
    cli_args = [
        "validate",
        "--config",
        "configs/eval/sources.yaml",
        "--trainer.logger.init_args.save_dir",
        args.save_dir,
        "--trainer.logger.init_args.name",
        name,
        "--trainer.enable_progress_bar",
        "false",
    ]
    if args.quick:
        cli_args += ["--data.init_args.max_samples.val", str(QUICK_QUESTIONS)]
    command = invocation()
    start = time.time()
    run = run_cli(cli_args)
    wall_s = time.time() - start
    report = json.loads((run / "report.json").read_text())
    out = run if args.quick else ROOT / "docs" / "results"
    keep = {k: v for k, v in report.items() if k != "thresholds"}
    atomic_write_json(
        out / "confidence_sources.json",
        {
            "command": command,
            "wall_s": round(wall_s, 1),
            "cpu_count": os.cpu_count(),
            "date": date.today().isoformat(),
            "run": str(run),
            "sources": {s: SOURCES[s].label for s in report["confidence_sources"]},
            "report": keep,
        },
    )
    section = results_markdown(report, wall_s, command)
    atomic_write_text(out / "confidence_sources.md", section)
    for plot in ("type2_roc", "reliability", "confidence_hist"):
        source = run / "plots" / f"val_{plot}.png"
        if source.is_file() and not args.quick:
            shutil.copyfile(source, out / f"confidence_sources_{plot}.png")
    if not args.quick:
        replace_section(DOC, START, END, section)
    print(f"\n{section}\nwritten: {out / 'confidence_sources.md'} ({wall_s / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
