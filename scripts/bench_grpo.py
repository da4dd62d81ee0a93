"""Benchmark ``GRPOModule`` (Lightning) against TRL's ``GRPOTrainer`` on the same model, prompts, G, lengths
and reward.

Both train the embedded SmolLM2-135M-Instruct (fp32, CPU) on the same FanOutQA questions in the same order
(chat-templated direct prompts), sample G completions of at most ``--completion-length`` tokens at temperature
1, reward alias matches, and take AdamW steps at lr 1e-6 with the same ``loss_type`` and ``beta`` and the rest
of the loss at both sides' (equal) defaults, the bias-corrected KL included. TRL runs with bf16 and gradient
checkpointing off (its defaults are on). Two rows: β = 0 (no reference model) and β = ``--beta`` (a reference
model, so reference log-probs and the KL term are timed too). Each side runs in its own subprocess, the two
alternating for ``--rounds`` rounds (the side that goes first alternates too), so a machine that gets busier
or quieter during the run moves both; each run does ``--warmup`` steps, then ``--steps`` timed optimizer steps
and keeps the median. Reported per row: the median over rounds and the spread (min, max) of

  completed samples/s = prompts × G / step time   (target: GRPOModule >= 1.3 × TRL)

and where the time goes (generation, rewards, reference / old log-probs, loss forward, backward + optimizer).
Writes docs/benchmarks/grpo.json.

    # 4 questions x G 8, <= 32 tokens, 3 timed steps, 3 rounds per row, 1 thread:
    python scripts/bench_grpo.py
    python scripts/bench_grpo.py --quick    # 2 x 4, <= 8 tokens, 1 timed step, 1 round (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from metalight.benchmarking import (
    BenchResult,
    StepClock,
    alternate_rounds,
    check,
    invocation,
    sync,
    write_results,
)
from metalight.data.records import collate_records
from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule
from metalight.grading import is_correct
from metalight.models.loading import load_model
from metalight.prompts import direct_prompt

MODEL = "embedded:smollm2-135m-instruct"
PROCESS = ("user_s", "system_s", "minor_faults", "major_faults")  # per child process, from getrusage
PHASES = ("generation", "rewards", "reference", "forward", "backward_optimizer")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=4, help="questions per optimizer step")
    parser.add_argument("--generations", type=int, default=8, help="G, completions per question")
    parser.add_argument("--completion-length", type=int, default=32, help="max completion tokens")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per side")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--beta", type=float, default=0.04, help="β of the second row (the first has β = 0)")
    parser.add_argument("--loss-type", default="dapo")
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each side per row")
    # One thread: a second one spins waiting for a core that another process holds (docs/grpo.md).
    parser.add_argument("--threads", type=int, default=1, help="torch threads per side (default 1)")
    parser.add_argument(
        "--quick", action="store_true", help="2 prompts x 4 generations x 8 tokens, 1 timed step, 1 round"
    )
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.generations, args.completion_length, args.steps, args.rounds = 2, 4, 8, 1, 1
    return args


def phases(step: float, spent: dict[str, float]) -> dict[str, float]:
    """The seconds per phase of one step, and the rest of the step as ``backward_optimizer``."""
    return {**spent, "backward_optimizer": step - sum(spent.values())}


def summarise(steps: list[dict[str, float]], samples: int) -> dict[str, float]:
    """Medians of each phase and of the step time; samples/s from the median step."""
    out = {k: statistics.median(s[k] for s in steps) for k in steps[0]}
    out["samples_per_s"] = samples / out["step_time"]
    return out


def bench_metalight(records, args) -> dict[str, float]:
    import lightning as L
    from torch.utils.data import DataLoader

    from metalight.data.datamodule import RecordDataset
    from metalight.methods.grpo.module import GRPOModule

    clock = StepClock()

    class Clock(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            clock.start()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            spent = {k: module.timings.get(k, 0.0) for k in PHASES[:-1]}
            clock.stop(
                **phases(clock.elapsed(), spent),
                mean_length=module.trainer.callback_metrics["train/completions/mean_length"].item(),
            )

    torch.manual_seed(0)
    module = GRPOModule(
        model=MODEL,
        num_generations=args.generations,
        max_completion_length=args.completion_length,
        loss_type=args.loss_type,
        beta=args.beta,
        rewards={"alias_match": 1.0},
    )
    loader = DataLoader(
        RecordDataset(records), batch_size=args.prompts, shuffle=False, collate_fn=collate_records
    )
    trainer = L.Trainer(
        max_steps=args.warmup + args.steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[Clock()],
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loader)
    return summarise(clock.steps[args.warmup :], args.prompts * args.generations)


def bench_trl(records, args) -> dict[str, float]:
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    def alias_match(prompts, completions, answers, **kwargs):
        return [float(is_correct(c[0]["content"], a)) for c, a in zip(completions, answers)]

    model, tokenizer = load_model(MODEL)
    # The embedded model's config keeps the GGUF quantization marker although its weights are dequantised
    # fp32; transformers' Trainer refuses to train a model so marked.
    model.is_quantized, model.hf_quantizer = False, None
    model.config.__dict__.pop("quantization_config", None)
    dataset = Dataset.from_list(
        [
            {"prompt": [{"role": "user", "content": direct_prompt(r.question)}], "answers": r.answers}
            for r in records
        ]
    )
    timings: dict[str, float] = defaultdict(float)

    clock = StepClock()

    class Clock(TrainerCallback):
        def on_step_begin(self, args_, state, control, **kwargs):
            timings.clear()
            clock.start()

        def on_step_end(self, args_, state, control, **kwargs):
            spent = {
                "generation": timings["generation"],
                "rewards": timings["rewards"],
                "reference": timings["score"] - timings["generation"] - timings["rewards"],
                "forward": timings["forward"],
            }
            clock.stop(
                **phases(clock.elapsed(), spent),
                mean_length=trainer._metrics["train"]["completions/mean_length"][-1],
            )

    config = GRPOConfig(
        output_dir=tempfile.mkdtemp(),
        use_cpu=True,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,
        loss_type=args.loss_type,
        beta=args.beta,
        learning_rate=1e-6,
        per_device_train_batch_size=args.prompts * args.generations,
        gradient_accumulation_steps=1,
        num_generations=args.generations,
        max_completion_length=args.completion_length,
        temperature=1.0,
        max_steps=args.warmup + args.steps,
        logging_steps=1,
        report_to="none",
        save_strategy="no",
        shuffle_dataset=False,
        seed=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=alias_match,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[Clock()],
    )
    for name, phase in (
        ("_generate_single_turn", "generation"),
        ("_calculate_rewards", "rewards"),
        ("_generate_and_score_completions", "score"),
        ("_compute_loss", "forward"),
    ):
        trainer.__dict__[name] = _timed(getattr(trainer, name), timings, phase)
    trainer.train()
    return summarise(clock.steps[args.warmup :], args.prompts * args.generations)


def _timed(fn, timings, phase):
    """``fn`` adding its seconds (CUDA synchronised) to ``timings[phase]`` on every call."""

    def wrapper(*a, **kw):
        sync()
        start = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            sync()
            timings[phase] += time.perf_counter() - start

    return wrapper


def child(args) -> None:
    """One side, one run: train, time, write the summary to ``--result``."""
    torch.set_num_threads(args.threads)
    needed = args.prompts * (args.warmup + args.steps)
    records = FanOutQASingleHopDataModule(strict=False, max_samples={"val": needed}).records("val")[:needed]
    summary = (bench_metalight if args.side == "ours" else bench_trl)(records, args)
    Path(args.result).write_text(json.dumps(summary))


def run_rounds(args, beta: float) -> dict[str, list[dict[str, float]]]:
    """``--rounds`` alternating subprocess runs of each side at ``beta``: {side: [summary per round]}."""
    with tempfile.TemporaryDirectory() as tmp:

        def run(side: str) -> dict[str, float]:
            result = Path(tmp) / f"{side}.json"
            command = [
                sys.executable,
                __file__,
                "--side",
                side,
                "--result",
                str(result),
                "--beta",
                str(beta),
                "--prompts",
                str(args.prompts),
                "--generations",
                str(args.generations),
                "--completion-length",
                str(args.completion_length),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--loss-type",
                args.loss_type,
                "--threads",
                str(args.threads),
            ]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            subprocess.run(command, check=True)
            return json.loads(result.read_text()) | process_costs(before)

        return alternate_rounds(
            args.rounds,
            ("ours", "trl"),
            run,
            report=lambda side, result: print(
                f"beta {beta} {side}: {result['samples_per_s']:.3f} samples/s", flush=True
            ),
        )


def process_costs(before) -> dict[str, float]:
    """CPU user / system seconds and page faults of the child run that just ended (whole process: model
    loading included), from ``getrusage(RUSAGE_CHILDREN)`` before and after it."""
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "user_s": after.ru_utime - before.ru_utime,
        "system_s": after.ru_stime - before.ru_stime,
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "major_faults": after.ru_majflt - before.ru_majflt,
    }


def row_results(args, beta: float, runs) -> tuple[list[BenchResult], dict]:
    """The benchmark rows of one β: median and spread over rounds, and the median seconds per phase."""
    ratios = [o["samples_per_s"] / t["samples_per_s"] for o, t in zip(runs["ours"], runs["trl"])]
    ratio = statistics.median(ratios)
    sps = {side: [r["samples_per_s"] for r in runs[side]] for side in runs}
    setting = (
        f"{args.prompts} prompts x G {args.generations}, <= {args.completion_length} tokens, "
        f"loss {args.loss_type}, beta {beta}; median of {args.rounds} alternating rounds"
    )
    tag = f"beta{beta:g}"
    results = [
        BenchResult(
            f"grpo_samples_per_s_vs_trl_{tag}",
            ratio,
            "ratio",
            ">= 1.3",
            "TRL 1.16 GRPOTrainer",
            check(ratio, ">= 1.3"),
            note=f"{setting}; spread {min(ratios):.2f}-{max(ratios):.2f}",
        ),
        BenchResult(
            f"metalight_samples_per_s_{tag}",
            statistics.median(sps["ours"]),
            "samples/s",
            note=f"spread {min(sps['ours']):.3f}-{max(sps['ours']):.3f}",
        ),
        BenchResult(
            f"trl_samples_per_s_{tag}",
            statistics.median(sps["trl"]),
            "samples/s",
            note=f"spread {min(sps['trl']):.3f}-{max(sps['trl']):.3f}",
        ),
    ]
    phases = {
        side: {
            k: round(statistics.median(r[k] for r in runs[side]), 3)
            for k in (*PHASES, "step_time", "mean_length", *PROCESS)
        }
        for side in runs
    }
    return results, {
        "setting": setting,
        "ratio_per_round": [round(r, 3) for r in ratios],
        "seconds_per_phase": phases,
    }


def main() -> None:
    args = parse_args()
    if args.side:
        child(args)
        return
    torch.set_num_threads(args.threads)  # the machine line of the JSON names the sides' thread count
    results, rows = [], {}
    for beta in (0.0, args.beta):
        row, detail = row_results(args, beta, run_rounds(args, beta))
        results += row
        rows[f"beta={beta:g}"] = detail
        for side, phases in detail["seconds_per_phase"].items():
            print(f"beta {beta:g}", side, " ".join(f"{k}={v}" for k, v in phases.items()))
    write_results(
        "grpo",
        results,
        MODEL,
        invocation(),
        extra={"timed_steps": args.steps, "warmup_steps": args.warmup, "rounds": args.rounds, "rows": rows},
    )


if __name__ == "__main__":
    main()
