"""Build MetaConf stage-1 SFT data (Answer / Self-reflection / Confidence targets) as prompt-completion JSONL.

From a model's own answers to FanOutQA train questions (default), or from a provided file (upstream's ShareGPT
rows, or collected outputs); reflections come from a writer model: a local one (default: the embedded model)
or an OpenAI-compatible endpoint (key from --api-key-env, never written anywhere).

  python scripts/build_metaconf_sft.py --out data/metaconf_stage1.jsonl --questions 200
  python scripts/build_metaconf_sft.py --out d.jsonl --base-url https://api.deepseek.com/v1 \
      --api-model deepseek-chat --api-key-env DEEPSEEK_API_KEY
  python scripts/build_metaconf_sft.py --out d.jsonl --input sft_with_reflection_long_form_qa.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import torch

from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule
from metalight.errors import DataError, MetalightError
from metalight.io import atomic_write_jsonl
from metalight.methods.metaconf.judge import HTTPChat, LocalChat
from metalight.methods.metaconf.stage1_data import (
    collect_targets,
    describe,
    read_provided,
    sft_rows,
    write_reflections,
)
from metalight.models.loading import load_model


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse turns the ValueError into a one-line usage error)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output JSONL (prompt-completion rows)")
    parser.add_argument("--input", help="a provided file instead of collecting answers")
    parser.add_argument(
        "--model", default="embedded:smollm2-135m-instruct", help="model whose answers are used"
    )
    parser.add_argument("--questions", type=positive_int, default=200, help="FanOutQA train questions to use")
    parser.add_argument(
        "--samples", type=positive_int, default=5, help="sampled answers per question (confidence target)"
    )
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--max-new-tokens", type=positive_int, default=32, help="answer budget in tokens")
    parser.add_argument("--format", choices=["plain", "tagged"], default="plain")
    parser.add_argument(
        "--prompt",
        choices=["instructed", "bare"],
        default="instructed",
        help="instructed: metalight's instruction and reply format before the question; bare: the "
        "question alone, as upstream (train stage 2 with the same model.init_args.prompt)",
    )
    parser.add_argument(
        "--writer-model", default="embedded:smollm2-135m-instruct", help="local reflection writer"
    )
    parser.add_argument("--writer-max-new-tokens", type=positive_int, default=96)
    parser.add_argument(
        "--base-url", help="OpenAI-compatible endpoint for the writer (instead of a local model)"
    )
    parser.add_argument("--api-model", help="model name at --base-url")
    parser.add_argument(
        "--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the key"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=positive_int, default=2)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    try:
        if args.base_url:
            writer = HTTPChat(
                args.base_url, args.api_model or "", api_key_env=args.api_key_env, temperature=0.9
            )
        else:
            writer = LocalChat(args.writer_model, max_new_tokens=args.writer_max_new_tokens)
        ready, rows = read_provided(args.input) if args.input else ([], None)
        if rows is None:
            model, tokenizer = load_model(args.model)
            records = FanOutQASingleHopDataModule(
                strict=False, max_samples={"train": args.questions}, seed=args.seed
            ).records("train")
            rows = collect_targets(
                model, tokenizer, records, args.samples, args.temperature, args.max_new_tokens, seed=args.seed
            )
        asked = len(rows)
        rows, failed = write_reflections(rows, writer) if rows else ([], 0)
        if asked and not rows and not ready:
            writer_name = args.base_url or args.writer_model
            raise DataError(
                f"the reflection writer ({writer_name}) gave no usable reflection for any of the "
                f"{asked} questions, so {args.out} would be empty; give a writer model that "
                f"follows instructions (--writer-model) or an endpoint (--base-url)"
            )
        out = ready + sft_rows(rows, args.format, args.prompt)
        atomic_write_jsonl(args.out, out)
    except MetalightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({"out": args.out, "rows": len(out), "writer_failures": failed, **describe(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
