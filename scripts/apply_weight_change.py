"""Patch a base model with a weight change (full, or the top / bottom p% of entries by |Δ|) and save it.

    python scripts/apply_weight_change.py --base embedded:smollm2-135m-instruct --delta delta.safetensors \\
        --out patched/top10 --ratio 0.1 --keep top            # one global threshold (as upstream ESMA)
    ... --scope per_tensor                                    # the same share within every tensor
    ... --keep bottom --ratio 0.1                             # the 10% smallest changes only
    ... --keep all_but_top --ratio 0.1                        # upstream's --from-bottom 0.1: the smallest 90%
    ... --skip-prefix model.embed_tokens                      # leave those tensors unpatched

The output is a ``save_pretrained`` directory (model + tokenizer) that every metalight config accepts as
``model:``.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from metalight.errors import MetalightError
from metalight.models.loading import load_model
from metalight.models.weight_delta import apply_delta, keep_masks, load_delta


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--base", required=True, help="model spec of the model the delta was extracted against"
    )
    parser.add_argument("--delta", required=True, help="safetensors file from extract_weight_change.py")
    parser.add_argument("--out", required=True, help="output directory (save_pretrained)")
    parser.add_argument("--ratio", type=float, default=1.0, help="share of delta entries to apply, in [0, 1]")
    parser.add_argument(
        "--keep",
        choices=["top", "bottom", "all_but_top"],
        default="top",
        help="apply the largest p (top), the smallest p (bottom), or all but the largest p "
        "(all_but_top: upstream's --from-bottom) of the |delta| entries",
    )
    parser.add_argument(
        "--scope",
        choices=["global", "per_tensor"],
        default="global",
        help="one magnitude threshold over all tensors (upstream) or one per tensor",
    )
    parser.add_argument(
        "--skip-prefix", action="append", default=[], help="do not patch tensors with this prefix"
    )
    parser.add_argument("--dtype", default="float32", help="dtype the base model is loaded and saved in")
    args = parser.parse_args(argv)
    out = Path(args.out)
    try:
        model, tokenizer = load_model(args.base, args.dtype)
        deltas = load_delta(args.delta)
        kept = apply_delta(
            model, deltas, keep_masks(deltas, args.ratio, args.keep, args.scope, args.skip_prefix)
        )
    except MetalightError as err:
        parser.exit(2, f"error: {err}\n")
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.replace(out)
    total = sum(d.numel() for d in deltas.values())
    share = sum(kept[n] * d.numel() for n, d in deltas.items()) / total
    print(
        f"applied {share:.2%} of {total:,} delta entries ({args.keep} {args.ratio:g}, {args.scope}) -> {out}"
    )
    return out


if __name__ == "__main__":
    main()
