"""Know-thyself's three-phase pipeline: judgment -> knowledge (LoRA, merged) -> judgment again; resumable.

Rerun the same command after a stop: finished phases are skipped and the stopped one resumes from its last
epoch checkpoint (state in <out>/pipeline_state.json). See docs/judgment.md.

    python scripts/know_thyself_pipeline.py --out runs/know-thyself            # real scale (TriviaQA files)
    python scripts/know_thyself_pipeline.py --quick --out runs/know-thyself-quick   # minutes on a CPU
    # all weights:
    python scripts/know_thyself_pipeline.py --quick --no-lora --out runs/know-thyself-quick-full
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from metalight.cli.judgment_pipeline import KnowThyselfPipeline, PipelineSettings, split_args
from metalight.errors import MetalightError

QUICK = ("configs/judgment/pipeline_quickstart.yaml", "configs/judgment/pipeline_knowledge_quickstart.yaml")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="experiment directory (state, one folder per phase)")
    parser.add_argument("--model", default="embedded:smollm2-135m-instruct", help="base model spec")
    parser.add_argument(
        "--judgment", default="configs/judgment/pipeline.yaml", help="fit config of phases 1 and 3"
    )
    parser.add_argument(
        "--knowledge", default="configs/judgment/pipeline_knowledge.yaml", help="fit config of phase 2"
    )
    parser.add_argument("--quick", action="store_true", help="use the quickstart configs (FanOutQA, minutes)")
    parser.add_argument(
        "--knowledge-on",
        choices=["unknown", "all"],
        default="unknown",
        help="phase 2 trains on the questions the base model could not answer (upstream), or on all",
    )
    parser.add_argument(
        "--no-lora",
        action="store_true",
        help="fine-tune all weights in every phase instead of LoRA adapters (lr --full-lr)",
    )
    parser.add_argument("--full-lr", type=float, default=1.0e-5, help="learning rate with --no-lora")
    parser.add_argument(
        "--judgment-args", default="", help="extra cli.py arguments for phases 1 and 3, quoted"
    )
    parser.add_argument("--knowledge-args", default="", help="extra cli.py arguments for phase 2, quoted")
    args = parser.parse_args(argv)
    judgment, knowledge = QUICK if args.quick else (args.judgment, args.knowledge)
    settings = PipelineSettings(
        out=args.out,
        base_model=args.model,
        judgment_config=judgment,
        knowledge_config=knowledge,
        knowledge_on=args.knowledge_on,
        judgment_args=split_args(args.judgment_args),
        knowledge_args=split_args(args.knowledge_args),
        no_lora=args.no_lora,
        full_lr=args.full_lr,
    )
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        KnowThyselfPipeline(settings).run()
    except MetalightError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
