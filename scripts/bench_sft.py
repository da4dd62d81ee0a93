"""Benchmark SFTModule's training throughput against TRL's SFTTrainer: same model, data, batch and length.

Both sides train the embedded SmolLM2-135M-Instruct (fp32, no gradient checkpointing, no packing, AdamW at a
constant learning rate, gradient clipping 1.0, completion-only loss) on the same prompt-completion examples
built from FanOutQA questions, every one exactly ``--length`` tokens after the chat template (long prompts cut
at their start, ``truncation_mode="keep_end"`` in TRL), so both read ``batch x length`` tokens per step. Each
side runs in its own subprocess (clean peak-memory numbers), ``--rounds`` times in alternating order; warm-up
steps are excluded and the median step time is taken. Reports training tokens/s of each (target: SFTModule /
TRL >= 1.0) and each side's peak training memory (RSS growth from the start of its first step on CPU, so
set-up is left out and gradients, AdamW state and activations are in; ``torch.cuda.max_memory_allocated`` on
GPU). Writes docs/benchmarks/sft.json.

    python scripts/bench_sft.py                 # batch 8 x 128 tokens, 2 warm-up + 6 timed steps, 2 rounds
    python scripts/bench_sft.py --quick         # batch 2 x 64 tokens, 1 + 2 steps, 1 round (a check)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from metalight.benchmarking import (
    BenchResult,
    PeakMemory,
    StepClock,
    alternate_rounds,
    check,
    invocation,
    write_results,
)

MODEL = "embedded:smollm2-135m-instruct"


def build_rows(n: int, length: int) -> list[dict]:
    """``n`` prompt-completion rows of exactly ``length`` chat-templated tokens after keeping the end."""
    from metalight.data.examples import SFTExample
    from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule
    from metalight.methods.sft.encoding import encode_example
    from metalight.models.loading import load_tokenizer, resolve_model_spec

    tokenizer = load_tokenizer(resolve_model_spec(MODEL))
    records = FanOutQASingleHopDataModule(strict=False).records("train")
    rows = []
    for i in range(n):
        record = records[i % len(records)]
        filler = " ".join(r.question for r in records[i + 1 : i + 1 + length // 8])  # real text, long enough
        example = SFTExample(prompt=f"{filler}\n{record.question}", completion=record.answers[0])
        if len(encode_example(tokenizer, example, max_length=10 * length).input_ids) <= length:
            raise SystemExit(f"example {i} is shorter than {length} tokens; lower --length")
        rows.append({"prompt": example.prompt, "completion": example.completion, "id": str(i)})
    return rows


def peak_memory() -> PeakMemory:
    """Peak training memory of one side: started when its first training step begins (set-up such as imports
    and data preparation left out; gradients, optimizer state and activations in), RSS sampled every 5 ms."""
    return PeakMemory("cuda" if torch.cuda.is_available() else "cpu", interval=0.005)


def run_ours(rows_path: str, args) -> dict:
    """Time SFTModule under a Lightning Trainer."""
    from lightning.pytorch import Callback, Trainer

    from metalight.data.sources.prompt_completion import PromptCompletionDataModule
    from metalight.methods.sft.module import SFTModule
    from metalight.methods.sft.optim import SFTAdamW

    clock, memory = StepClock(), peak_memory()

    class Timer(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            memory.start()
            self.seen = module.tokens_seen
            clock.start()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            clock.stop(tokens=module.tokens_seen - self.seen)

    module = SFTModule(model=MODEL, optimizer=SFTAdamW, lr_scheduler=None, max_length=args.length)
    data = PromptCompletionDataModule(path=rows_path, batch_size=args.batch_size)
    trainer = Trainer(
        max_steps=args.warmup + args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=1.0,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        callbacks=[Timer()],
    )
    trainer.fit(module, data)
    memory.stop()
    return summarise(clock, memory, args)


def run_trl(rows_path: str, args) -> dict:
    """Time TRL's SFTTrainer with the settings matched explicitly (TRL defaults to bf16 and checkpointing)."""
    import datasets
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from metalight.models.loading import load_model

    model, tokenizer = load_model(MODEL)
    model.train()
    rows = [json.loads(line) for line in Path(rows_path).read_text().splitlines()]
    dataset = datasets.Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "completion": [{"role": "assistant", "content": r["completion"]}],
            }
            for r in rows
        ]
    )
    holder: dict = {}
    clock, memory = StepClock(), peak_memory()

    class Timer(TrainerCallback):
        def on_step_begin(self, targs, state, control, **kwargs):
            memory.start()
            holder["seen"] = holder["trainer"]._total_train_tokens
            clock.start()

        def on_step_end(self, targs, state, control, **kwargs):
            clock.stop(tokens=holder["trainer"]._total_train_tokens - holder["seen"])

    with tempfile.TemporaryDirectory() as out:
        config = SFTConfig(
            output_dir=out,
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=1,
            max_steps=args.warmup + args.steps,
            learning_rate=1e-5,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=1.0,
            bf16=False,
            fp16=False,
            gradient_checkpointing=False,
            packing=False,
            max_length=args.length,
            truncation_mode="keep_end",
            completion_only_loss=True,
            logging_steps=10**6,
            save_strategy="no",
            report_to="none",
            dataloader_num_workers=0,
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            seed=0,
        )
        trainer = SFTTrainer(
            model=model, args=config, train_dataset=dataset, processing_class=tokenizer, callbacks=[Timer()]
        )
        holder["trainer"] = trainer
        trainer.train()
    memory.stop()
    return summarise(clock, memory, args)


def summarise(clock: StepClock, memory: PeakMemory, args) -> dict:
    """Median step time and tokens/s over the timed (post-warm-up) steps, and the peak training memory."""
    steps = clock.steps[args.warmup :]
    median = statistics.median(s["step_time"] for s in steps)
    counted = statistics.median(s["tokens"] for s in steps)
    return {
        "median_step_s": median,
        "tokens_per_step": counted,
        "tokens_per_s": counted / median,
        "steps_timed": len(steps),
        "peak_memory_mib": memory.extra / 2**20,
    }


def child(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = (run_ours if args.side == "ours" else run_trl)(args.rows, args)
    Path(args.result).write_text(json.dumps(result))


def parent(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp) / "rows.jsonl"
        rows = build_rows(args.batch_size * (args.warmup + args.steps), args.length)
        rows_path.write_text("".join(json.dumps(r) + "\n" for r in rows))

        def run(side: str) -> dict:
            result_path = Path(tmp) / f"{side}.json"
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--side",
                    side,
                    "--rows",
                    str(rows_path),
                    "--result",
                    str(result_path),
                    "--batch-size",
                    str(args.batch_size),
                    "--length",
                    str(args.length),
                    "--warmup",
                    str(args.warmup),
                    "--steps",
                    str(args.steps),
                    "--threads",
                    str(args.threads),
                ],
                check=True,
            )
            return json.loads(result_path.read_text())

        runs = alternate_rounds(
            args.rounds,
            ("ours", "trl"),
            run,
            report=lambda side, result: print(f"{side}: {result}", flush=True),
        )
    best = {side: max(r["tokens_per_s"] for r in results) for side, results in runs.items()}
    memory = {side: max(r["peak_memory_mib"] for r in results) for side, results in runs.items()}
    ratio = best["ours"] / best["trl"]
    where = f"batch {args.batch_size} x {args.length} tokens"
    results = [
        BenchResult(
            "sft_train_tokens_per_s_vs_trl_sfttrainer",
            ratio,
            "ratio",
            ">= 1.0",
            f"TRL SFTTrainer, {where}",
            check(ratio, ">= 1.0"),
            note=f"SFTModule {best['ours']:.1f} tok/s, TRL {best['trl']:.1f} tok/s (best round of "
            f"{args.rounds}, median of {args.steps} steps after {args.warmup} warm-up)",
        ),
        BenchResult("sft_train_tokens_per_s", best["ours"], "tok/s", note=where),
        BenchResult("trl_sfttrainer_tokens_per_s", best["trl"], "tok/s", note=where),
        BenchResult(
            "sft_peak_train_memory",
            memory["ours"],
            "MiB",
            note="growth from the first step's start: RSS on CPU, allocated memory on GPU",
        ),
        BenchResult(
            "trl_sfttrainer_peak_train_memory",
            memory["trl"],
            "MiB",
            note="growth from the first step's start: RSS on CPU, allocated memory on GPU",
        ),
    ]
    command = invocation()
    write_results("sft", results, MODEL, command, extra={"runs": runs, "settings": vars(args)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--length", type=int, default=128, help="tokens per sequence")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps")
    parser.add_argument("--steps", type=int, default=6, help="timed steps")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="batch 2 x 64 tokens, 1 + 2 steps, 1 round")
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick and args.side is None:
        args.batch_size, args.length, args.warmup, args.steps, args.rounds = 2, 64, 1, 2, 1
    (child if args.side else parent)(args)


if __name__ == "__main__":
    main()
