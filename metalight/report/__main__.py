"""``python -m metalight.report compare RUN [RUN ...]`` and ``python -m metalight.report plots RUN``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from metalight.errors import MetalightError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metalight.report", description="Compare evaluation runs, or redraw one run's plots."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    compare = commands.add_parser(
        "compare",
        help="side-by-side markdown table of report.json files and a comparison plot",
        description="Print a markdown table "
        "(metrics as rows, runs as columns, then the settings that differ) "
        "and write a bar chart of the main metrics.",
    )
    compare.add_argument(
        "runs",
        nargs="+",
        help="run directories (runs/<experiment>/version_N), experiment directories (newest "
        "version) or report JSON files",
    )
    compare.add_argument("--names", nargs="+", help="column names, one per run (default: experiment/version)")
    compare.add_argument(
        "--metrics",
        nargs="+",
        help="report keys to show, e.g. accuracy dprime_type2 p_true/prr (default: the "
        "table metrics of metalight/metrics/registry.py, for the run and for each "
        "confidence source)",
    )
    compare.add_argument("--out", default="compare.png", help="comparison plot path (default: %(default)s)")
    compare.add_argument("--markdown", help="also write the table to this file")
    plots = commands.add_parser(
        "plots",
        help="redraw a run's plots from its samples files",
        description="Draw plots/<split>_*.png of a run from samples/<split>.jsonl.",
    )
    plots.add_argument("run", help="run directory holding samples/<split>.jsonl")
    plots.add_argument("--split", default="val", choices=["val", "test"], help="split (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; errors print one line naming the cause and exit with status 2."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "compare":
            return _compare(args)
        return _plots(args)
    except MetalightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _compare(args) -> int:
    from metalight.metrics.registry import metric_names
    from metalight.report.plots import compare_figure, save_png
    from metalight.report.tables import load_reports, markdown_table

    reports = load_reports(args.runs, args.names)
    table = markdown_table(reports, args.metrics)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    keys = [
        k
        for k in (args.metrics or metric_names("curve"))
        if any(isinstance(r.get(k), (int, float)) for r in reports.values())
    ]
    if keys:
        save_png(compare_figure(reports, keys), args.out)
        print(f"\ncomparison plot: {args.out}")
    return 0


def _plots(args) -> int:
    from metalight.errors import ConfigError
    from metalight.io import read_jsonl
    from metalight.report.plots import report_label, run_figures, save_png

    run = Path(args.run)
    samples_file = run / "samples" / f"{args.split}.jsonl"
    if not samples_file.is_file():
        raise ConfigError(
            f"{samples_file} not found; pass a run directory written by `cli.py validate|test|fit`"
        )
    history = [json.loads(p.read_text()) for p in (run / "reports").glob(f"{args.split}_step*.json")]
    report_file = run / "report.json"  # the latest evaluation's report; its split may differ
    report = json.loads(report_file.read_text()) if report_file.is_file() else {}
    label = report_label(report, args.split) if report.get("split") == args.split else f"{run} · {args.split}"
    figures = run_figures(read_jsonl(samples_file), history if len(history) > 1 else None, label)
    for name, figure in figures.items():
        print(save_png(figure, run / "plots" / f"{args.split}_{name}.png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
