"""Extract the weight change of a fine-tuned model: Δ = tuned − base per parameter, as safetensors.

    python scripts/extract_weight_change.py --base embedded:smollm2-135m-instruct \\
        --tuned runs/esma-quickstart/version_0/checkpoints/last.ckpt --out delta.safetensors

``--tuned`` is a model spec (directory, hub id, ...) or a Lightning checkpoint of a run on ``--base``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from metalight.errors import MetalightError
from metalight.models.checkpoints import load_checkpoint_weights
from metalight.models.loading import load_model
from metalight.models.weight_delta import save_delta, weight_delta


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="model spec of the model before fine-tuning")
    parser.add_argument("--tuned", required=True, help="model spec, or a Lightning .ckpt of a run on --base")
    parser.add_argument("--out", default="weight_change.safetensors", help="output file (safetensors)")
    parser.add_argument("--dtype", default="float32", help="dtype both models are loaded in")
    args = parser.parse_args(argv)
    try:
        base, _ = load_model(args.base, args.dtype)
        if args.tuned.endswith(".ckpt"):
            tuned = load_checkpoint_weights(load_model(args.base, args.dtype)[0], args.tuned)
        else:
            tuned, _ = load_model(args.tuned, args.dtype)
        deltas = weight_delta(base, tuned)
        path = save_delta(deltas, args.out)
    except MetalightError as err:
        parser.exit(2, f"error: {err}\n")
    changed = sum(int((d != 0).sum()) for d in deltas.values())
    total = sum(d.numel() for d in deltas.values())
    print(f"{len(deltas)} tensors, {changed:,} of {total:,} entries changed -> {path}")
    return path


if __name__ == "__main__":
    main()
