"""``python -m metalight.cli.evaluate threshold|sweep ...``: evaluations that span several ``cli.py`` runs.

Single-run modes are configs:
``python cli.py validate --config configs/eval/{sources,idk,threshold,api}.yaml``.
"""

from __future__ import annotations

import argparse
import sys

from metalight.errors import MetalightError

EPILOG = (
    "examples:\n"
    "  python -m metalight.cli.evaluate threshold --config configs/eval/threshold.yaml\n"
    "  python -m metalight.cli.evaluate threshold --config configs/eval/sources.yaml "
    "--data.init_args.max_samples 50\n"
    "  python -m metalight.cli.evaluate sweep configs/sweeps/generalisation.yaml\n"
    "  python -m metalight.cli.evaluate sweep configs/sweeps/generalisation.yaml "
    "--model.init_args.model runs/esma/hf\n"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m metalight.cli.evaluate",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Evaluations spanning several runs. "
        "Single-run modes (confidence sources, IDK, API models) "
        "are configs for `python cli.py validate|test --config configs/eval/<mode>.yaml`.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "threshold",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="choose each confidence source's threshold on val, apply it to test",
        description="Run `cli.py validate` "
        "(each source's threshold maximises the module's threshold_criterion "
        "on val), then `cli.py test` with those thresholds, and print every source's coverage, "
        "accuracy if answered and d'type2 on both splits. All arguments go to cli.py, e.g. "
        "--config configs/eval/threshold.yaml --data.init_args.max_samples 100.",
    )
    sweep = commands.add_parser(
        "sweep",
        help="evaluate one model across a list of dataset / prompt configurations",
        description="Run `cli.py validate` (or test) "
        "once per entry of a sweep file (configs/sweeps/*.yaml) and "
        "print one table; writes <save_dir>/<sweep name>/summary.{md,json}. Arguments after the "
        "file go to every entry, e.g. --model.init_args.model runs/x/version_0/hf.",
    )
    sweep.add_argument(
        "spec", help="sweep YAML: name, base config, args for every entry, entries [{name, args}]"
    )
    sweep.add_argument(
        "--split", default="val", choices=["val", "test"], help="split to evaluate (default: val)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; a configuration error prints one line and returns 2."""
    # Every option this parser does not know is a cli.py argument (--config, --model.init_args...).
    args, cli_args = _parser().parse_known_args(argv)
    from metalight.cli.multirun import SweepSpec, sweep_evaluation, threshold_evaluation

    try:
        if args.command == "threshold":
            if not cli_args:
                raise MetalightError("threshold needs cli.py arguments, at least --config <file>")
            val_run, test_run, table = threshold_evaluation(cli_args)
            print(f"\nthreshold chosen on val ({val_run}), applied to test ({test_run}):\n{table}")
            return 0
        sweep_dir, table, rows = sweep_evaluation(SweepSpec.load(args.spec), args.split, cli_args)
        print(f"\n{table}")
        if sweep_dir is not None:
            print(f"\nsummary: {sweep_dir / 'summary.md'} and summary.json")
        return 1 if any("error" in row for row in rows) else 0
    except MetalightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
