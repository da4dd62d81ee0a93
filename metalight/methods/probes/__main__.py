"""Neurofeedback experiments over a fitted probe run:
``python -m metalight.methods.probes <command> --run RUN``.

    prep      python cli.py fit --config configs/probes/true_false.yaml   -> runs/probes-true_false/version_N
    report    can the model report its neural labels?         -> RUN/neurofeedback/report.json
    predexp   labels of RUN (config S) reported by --model E   -> RUN/neurofeedback/predexp_<E>.json
    control   can it imitate label 0 / 1 on command?          -> RUN/neurofeedback/control.json (+ rows)
    steer     does adding α·axis change what it writes?       -> RUN/neurofeedback/steering.json
    trial     the original trial: generated world facts, scored -> RUN/neurofeedback/trial.json (+ rows)
    tokens    per-token axis scores of the held-out examples  -> RUN/neurofeedback/token_scores.jsonl
    labels    binary or Likert labels of the held-out scores  -> RUN/neurofeedback/labels_<binner>.jsonl
    plots     PNG figures of everything above                 -> RUN/neurofeedback/*.png

Repeat counts default to upstream's (100 shuffles of up to 600 examples, 100 control trials); ``--quick``
lowers them for a CPU run (explicit flags still win). Every result is also logged to TensorBoard in
RUN/neurofeedback (scalars; ``plots`` adds the figures).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
import time
from typing import Any

import torch

from metalight.errors import ConfigError, MetalightError
from metalight.io import atomic_write_json, atomic_write_jsonl
from metalight.methods.probes.cache import model_fingerprint, slug
from metalight.methods.probes.experiments.common import ProbeRun, percentile_layers
from metalight.methods.probes.tensorboard import log_results, summary_writer
from metalight.models.placement import add_placement_arguments, load_placed
from metalight.prompts import NEUROFEEDBACK_PROMPT_VERSION

log = logging.getLogger("metalight.methods.probes")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="probe run directory (runs/<name>/version_N)")
    parser.add_argument(
        "--layers",
        type=int,
        nargs="+",
        help="layers (default: the 0/25/50/75/100th percentiles of the probe layers)",
    )
    parser.add_argument("--axes", nargs="+", help="axes, e.g. lr pc1 (default: all of the run's)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"CPU-sized repeat counts {QUICK} instead of upstream's {UPSTREAM}",
    )
    add_placement_arguments(parser)


UPSTREAM = {
    "shuffles": 100,
    "max_examples": 600,
    "trials": 100,
    "n_examples": [0, 2, 4, 8, 16, 32, 64, 128, 256],
}
"""Upstream's repeat counts: ``n_exp`` 100 and ``n_sample`` 600 (report), ``imit_exp`` 0-99 (control)."""
QUICK = {"shuffles": 4, "max_examples": 48, "trials": 8, "n_examples": [0, 4, 16]}


def _repeats(args: argparse.Namespace) -> None:
    """Fill unset repeat counts from ``QUICK`` (with ``--quick``) or ``UPSTREAM``."""
    for key, value in (QUICK if args.quick else UPSTREAM).items():
        if hasattr(args, key) and getattr(args, key) is None:
            setattr(args, key, value)


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m metalight.methods.probes`` command line."""
    parser = argparse.ArgumentParser(
        prog="python -m metalight.methods.probes", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("report", "predexp"):
        p = sub.add_parser(name, help="report experiment" if name == "report" else "cross-setting report")
        _common(p)
        p.add_argument("--shuffles", type=int, help="repeated shuffles (default: upstream's 100)")
        p.add_argument(
            "--max-examples",
            type=int,
            help="examples per chat (default: upstream's 600, or all held-out if fewer)",
        )
        if name == "predexp":
            p.add_argument("--model", required=True, help="model spec E that reads run S's labels")
    p = sub.add_parser("control", help="control experiment")
    _common(p)
    p.add_argument(
        "--n-examples", type=int, nargs="+", help="in-context examples N (default: upstream's 0 2 4 ... 256)"
    )
    p.add_argument("--trials", type=int, help="trials per N (default: upstream's 100)")
    p.add_argument("--modes", nargs="+", choices=("inactive", "active"), default=["inactive", "active"])
    p.add_argument("--max-new-tokens", type=int, default=50)
    p.add_argument("--temperature", type=float, default=0.7)
    p = sub.add_parser("steer", help="steering check")
    _common(p)
    p.add_argument(
        "--alphas", type=float, nargs="+", default=[-8.0, 0.0, 8.0], help="in units of the axis's train std"
    )
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--max-new-tokens", type=int, default=50)
    p.add_argument("--temperature", type=float, default=0.7)
    p = sub.add_parser("trial", help="original trial: generated world facts, report and control")
    _common(p)
    p.add_argument(
        "--sentences",
        type=int,
        default=10,
        help="world facts, a true and a false one per category "
        "(upstream: 10; at most twice the number of categories)",
    )
    p.add_argument(
        "--categories",
        metavar="FILE",
        help="one category per line, e.g. upstream's "
        "data/NF_honesty_category.txt (default: its first 16, built in)",
    )
    p.add_argument("--max-new-tokens", type=int, default=40)
    p.add_argument("--temperature", type=float, default=1.0, help="for the facts (upstream: 1.0)")
    p = sub.add_parser("tokens", help="per-token axis scores (upstream last_assistant_to_eos_each)")
    _common(p)
    p = sub.add_parser("labels", help="binary or Likert labels of the held-out scores")
    _common(p)
    p.add_argument("--binner", choices=("binary", "likert"), default="binary")
    p.add_argument("--points", type=int, default=6, help="Likert points (even; upstream: 6)")
    p = sub.add_parser("plots", help="PNG figures")
    p.add_argument("--run", required=True)
    return parser


def _load(args: argparse.Namespace, spec: str, run: ProbeRun | None = None, check: bool = False):
    # An axis scores only the model it was fitted on, in the same dtype (the fingerprint includes it).
    dtype = args.dtype
    if dtype == "auto" and run is not None:
        dtype = run.probes.meta.get("model_dtype", "float32")
    model, tokenizer = load_placed(spec, args.device, dtype, args.device_map)
    if check and run is not None:
        run.probes.check_model(model_fingerprint(model), spec)
    return model, tokenizer


def _write(
    run: ProbeRun,
    name: str,
    experiment: str,
    settings: dict[str, Any],
    results: list[dict[str, Any]],
    started: float,
) -> None:
    settings = {**settings, "prompt_version": NEUROFEEDBACK_PROMPT_VERSION}
    data = {
        "experiment": experiment,
        "settings": settings,
        "results": results,
        "wall_s": round(time.time() - started, 1),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    path = atomic_write_json(run.output_dir() / f"{name}.json", data)
    print(f"wrote {path}", flush=True)
    count = log_results(run.output_dir(), name, results)
    print(f"logged {count} scalars to TensorBoard in {run.output_dir()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run one command; configuration errors print one line and exit with status 2."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except MetalightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "plots":
        from metalight.methods.probes.plots import plot_run

        with summary_writer(ProbeRun.load(args.run).output_dir()) as writer:
            for path in plot_run(args.run, writer):
                print(f"wrote {path}")
        return 0
    _repeats(args)
    torch.set_num_threads(args.threads)
    run = ProbeRun.load(args.run)
    configs = run.configs(args.layers or percentile_layers(run.probes.layers), args.axes)
    if args.command == "labels":
        from metalight.methods.probes.labels import label_rows

        rows = label_rows(run, configs, args.binner, args.points)
        path = atomic_write_jsonl(run.output_dir() / f"labels_{args.binner}.jsonl", rows)
        print(f"wrote {path} ({len(rows)} rows)")
        return 0
    settings = {"run": str(run.path), "model": run.model_spec, "configs": configs, "seed": args.seed}
    started = time.time()
    if args.command in ("report", "predexp"):
        from metalight.methods.probes.experiments.self_report import run_report

        spec = args.model if args.command == "predexp" else run.model_spec
        model, tokenizer = _load(args, spec)
        results = run_report(model, tokenizer, run, configs, args.shuffles, args.seed, args.max_examples)
        settings.update(
            model=spec,
            config_s={"model": run.model_spec, "run": str(run.path)},
            shuffles=args.shuffles,
            max_examples=args.max_examples,
        )
        name = "report" if args.command == "report" else f"predexp_{slug(spec)}"
        _write(run, name, args.command, settings, results, started)
    elif args.command == "control":
        from metalight.methods.probes.experiments.control import run_trials, summarise_control

        model, tokenizer = _load(args, run.model_spec, run, check=True)
        rows = run_trials(
            model,
            tokenizer,
            run,
            configs,
            args.n_examples,
            args.trials,
            args.modes,
            args.seed,
            args.max_new_tokens,
            args.temperature,
        )
        atomic_write_jsonl(run.output_dir() / "control_rows.jsonl", rows)
        settings.update(
            n_examples=args.n_examples,
            trials=args.trials,
            modes=args.modes,
            axes=run.probes.axes,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
        )
        _write(run, "control", "control", settings, summarise_control(rows, run.probes.axes), started)
    elif args.command == "tokens":
        from metalight.methods.probes.experiments.tokens import token_score_rows

        model, tokenizer = _load(args, run.model_spec, run, check=True)
        rows = token_score_rows(model, tokenizer, run, configs)
        path = atomic_write_jsonl(run.output_dir() / "token_scores.jsonl", rows)
        print(f"wrote {path} ({len(rows)} rows)")
    elif args.command == "trial":
        from metalight.methods.probes.experiments.trial import read_categories, run_trial
        from metalight.prompts import NF_TRIAL_CATEGORIES

        categories = read_categories(args.categories) if args.categories else NF_TRIAL_CATEGORIES
        if not 2 <= args.sentences <= 2 * len(categories):
            raise ConfigError(
                f"--sentences {args.sentences}: must be in 2..{2 * len(categories)} (two per "
                f"category; {len(categories)} categories); pass --categories FILE for more"
            )
        model, tokenizer = _load(args, run.model_spec, run, check=True)
        results, rows = run_trial(
            model,
            tokenizer,
            run,
            configs,
            args.sentences,
            args.seed,
            args.max_new_tokens,
            args.temperature,
            categories=categories,
        )
        atomic_write_jsonl(run.output_dir() / "trial_rows.jsonl", rows)
        settings.update(
            sentences=args.sentences,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            categories=args.categories or "built-in (16)",
        )
        _write(run, "trial", "trial", settings, results, started)
    else:
        from metalight.methods.probes.experiments.steering import run_steering

        model, tokenizer = _load(args, run.model_spec, run, check=True)
        results = [
            run_steering(
                model,
                tokenizer,
                run,
                layer,
                axis,
                args.alphas,
                args.samples,
                args.seed,
                args.max_new_tokens,
                args.temperature,
            )
            for layer, axis in configs
        ]
        settings.update(
            alphas=args.alphas,
            samples=args.samples,
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
        )
        _write(run, "steering", "steering", settings, results, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
