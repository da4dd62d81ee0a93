"""Sweep weight patches: apply the top / bottom / all-but-top p of a weight change to the base model for
several p, evaluate each patched model on held-out questions, write one JSON and one figure.

    python scripts/weight_patch_sweep.py --delta delta.safetensors --out runs/patch-sweep \\
        --config configs/quickstart.yaml --base embedded:smollm2-135m-instruct \\
        --ratios 0 0.01 0.1 0.5 1 --keep top all_but_top

``--keep all_but_top`` is upstream's ``--from-bottom`` (with ratio p it keeps the smallest 1 − p of |Δ|);
``--keep bottom`` keeps the smallest p. The questions, the evaluation settings and the d'type2 correction come
from ``--config`` (any ``cli.py`` config; its val split by default); arguments this script does not know go
to that config, e.g. ``--data.init_args.max_samples '{"val": 50}'``. Writes ``<out>/patch_sweep.json`` and
``<out>/patch_sweep.png`` (d'type2 and accuracy against p).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from unittest import mock

from metalight.cli import build_cli
from metalight.errors import MetalightError
from metalight.io import atomic_write_json
from metalight.methods.esma.patch_sweep import patch_sweep, plot_sweep
from metalight.models.weight_delta import load_delta


def build(config: str, base: str, extra: list[str]):
    """The config's module (on the base model) and DataModule, built as ``cli.py`` would, not run."""
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        cli = build_cli(["--config", config, "--model.init_args.model", base, *extra], run=False)
    return cli.model, cli.datamodule


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delta", required=True, help="safetensors file from extract_weight_change.py")
    parser.add_argument("--out", required=True, help="output directory (patch_sweep.json, patch_sweep.png)")
    parser.add_argument(
        "--config", default="configs/quickstart.yaml", help="cli.py config: questions, evaluation"
    )
    parser.add_argument(
        "--base",
        default="embedded:smollm2-135m-instruct",
        help="model spec of the model the delta was extracted against",
    )
    parser.add_argument(
        "--ratios",
        type=float,
        nargs="+",
        default=[0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0],
        help="shares p of the delta entries, in [0, 1]",
    )
    parser.add_argument(
        "--keep",
        nargs="+",
        choices=["top", "bottom", "all_but_top"],
        default=["top"],
        help="selection rules: largest p, smallest p, or all but the largest p (upstream's --from-bottom)",
    )
    parser.add_argument(
        "--scope",
        choices=["global", "per_tensor"],
        default="global",
        help="one magnitude threshold over all tensors (upstream) or one per tensor",
    )
    parser.add_argument("--split", choices=["val", "test"], default="val", help="held-out split to evaluate")
    args, extra = parser.parse_known_args(argv)
    out = Path(args.out)
    try:
        module, datamodule = build(args.config, args.base, extra)
        deltas = load_delta(args.delta)
        records = datamodule.records(args.split)
        module.configure_model()
        module.model.eval()
        rows = patch_sweep(
            module.model,
            module.tokenizer,
            deltas,
            records,
            args.ratios,
            args.keep,
            args.scope,
            module.eval_settings,
            module.hparams.dprime_correction,
        )
    except MetalightError as err:
        parser.exit(2, f"error: {err}\n")
    result = {
        "base": args.base,
        "delta": str(args.delta),
        "config": args.config,
        "split": args.split,
        "questions": len(records),
        "dataset": datamodule.describe_name(),
        "scope": args.scope,
        "evaluation": module.eval_settings.describe(module.tokenizer),
        "dprime_correction": module.hparams.dprime_correction,
        "rows": rows,
    }
    atomic_write_json(out / "patch_sweep.json", result)
    plot_sweep(
        rows,
        out / "patch_sweep.png",
        f"{args.base} + Δ ({args.scope}), {len(records)} {args.split} questions",
    )
    print(f"{'keep':<12} {'p':>6} {'applied':>8} {'accuracy':>9} {'d′type2':>8}")
    for row in rows:
        print(
            f"{row['keep']:<12} {row['ratio']:>6.3f} {row['applied_share']:>8.3f} {row['accuracy']:>9.3f} "
            f"{row['dprime_type2']:>8.3f}"
        )
    print(f"wrote {out / 'patch_sweep.json'} and {out / 'patch_sweep.png'}")
    return out


if __name__ == "__main__":
    main()
