"""Benchmark ``GRPOModule`` (Lightning) against TRL's ``GRPOTrainer`` on the same model, prompts, G, lengths and reward.

Both train the embedded SmolLM2-135M-Instruct (fp32, CPU) on the same FanOutQA questions in the same order
(chat-templated direct prompts), sample G completions of at most ``--completion-length`` tokens at temperature
1, reward alias matches, and take AdamW steps at lr 1e-6 with the same ``loss_type`` and ``beta``. TRL runs with
bf16 and gradient checkpointing off (its defaults are on) and loss_type / beta set explicitly. Each side does
``--warmup`` steps, then ``--steps`` timed optimizer steps; the median is reported:

  completed samples/s = prompts × G / step time   (target: GRPOModule >= 1.3 × TRL)

and where the time goes (generation, rewards, reference / old log-probs, loss forward, backward + optimizer).
Writes docs/benchmarks/grpo.json.  Usage: python scripts/bench_grpo.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections import defaultdict

import torch

from metalight.benchmarking import BenchResult, check, invocation, write_results
from metalight.data.records import collate_records
from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule
from metalight.grading import is_correct
from metalight.models.loading import load_model
from metalight.prompts import direct_prompt

MODEL = "embedded:smollm2-135m-instruct"
PHASES = ("generation", "rewards", "reference", "forward", "backward_optimizer")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompts", type=int, default=4, help="questions per optimizer step")
    parser.add_argument("--generations", type=int, default=8, help="G, completions per question")
    parser.add_argument("--completion-length", type=int, default=32, help="max completion tokens")
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per side")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--beta", type=float, default=0.0)
    parser.add_argument("--loss-type", default="dapo")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 prompts x 4 generations x 8 tokens, 1 timed step")
    args = parser.parse_args()
    if args.quick:
        args.prompts, args.generations, args.completion_length, args.steps = 2, 4, 8, 1
    return args


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

    class Clock(L.Callback):
        def __init__(self):
            self.steps = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            self.start = time.perf_counter()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            step = time.perf_counter() - self.start
            spent = {k: module.timings.get(k, 0.0) for k in PHASES[:-1]}
            self.steps.append({"step_time": step, **spent, "backward_optimizer": step - sum(spent.values()),
                               "mean_length": module.trainer.callback_metrics["train/completions/mean_length"].item()})

    torch.manual_seed(0)
    module = GRPOModule(model=MODEL, num_generations=args.generations, max_completion_length=args.completion_length,
                        loss_type=args.loss_type, beta=args.beta, rewards={"alias_match": 1.0})
    loader = DataLoader(RecordDataset(records), batch_size=args.prompts, shuffle=False, collate_fn=collate_records)
    clock = Clock()
    trainer = L.Trainer(max_steps=args.warmup + args.steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[clock], limit_val_batches=0)
    trainer.fit(module, train_dataloaders=loader)
    return summarise(clock.steps[args.warmup:], args.prompts * args.generations)


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
    dataset = Dataset.from_list([{"prompt": [{"role": "user", "content": direct_prompt(r.question)}],
                                  "answers": r.answers} for r in records])
    timings: dict[str, float] = defaultdict(float)

    class Clock(TrainerCallback):
        def __init__(self):
            self.steps = []

        def on_step_begin(self, args_, state, control, **kwargs):
            timings.clear()
            self.start = time.perf_counter()

        def on_step_end(self, args_, state, control, **kwargs):
            step = time.perf_counter() - self.start
            spent = {"generation": timings["generation"], "rewards": timings["rewards"],
                     "reference": timings["score"] - timings["generation"] - timings["rewards"],
                     "forward": timings["forward"]}
            self.steps.append({"step_time": step, **spent, "backward_optimizer": step - sum(spent.values()),
                               "mean_length": trainer._metrics["train"]["completions/mean_length"][-1]})

    config = GRPOConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, bf16=False, fp16=False,
                        gradient_checkpointing=False, loss_type=args.loss_type, beta=args.beta, learning_rate=1e-6,
                        per_device_train_batch_size=args.prompts * args.generations, gradient_accumulation_steps=1,
                        num_generations=args.generations, max_completion_length=args.completion_length,
                        temperature=1.0, max_steps=args.warmup + args.steps, logging_steps=1, report_to="none",
                        save_strategy="no", shuffle_dataset=False, seed=0, disable_tqdm=True)
    clock = Clock()
    trainer = GRPOTrainer(model=model, reward_funcs=alias_match, args=config, train_dataset=dataset,
                          processing_class=tokenizer, callbacks=[clock])
    for name, phase in (("_generate_single_turn", "generation"), ("_calculate_rewards", "rewards"),
                        ("_generate_and_score_completions", "score"), ("_compute_loss", "forward")):
        trainer.__dict__[name] = _timed(getattr(trainer, name), timings, phase)
    trainer.train()
    return summarise(clock.steps[args.warmup:], args.prompts * args.generations)


def _timed(fn, timings, phase):
    def wrapper(*a, **kw):
        start = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            timings[phase] += time.perf_counter() - start
    return wrapper


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    needed = args.prompts * (args.warmup + args.steps)
    records = FanOutQASingleHopDataModule(strict=False, max_samples={"val": needed}).records("val")[:needed]
    ours = bench_metalight(records, args)
    trl = bench_trl(records, args)
    ratio = ours["samples_per_s"] / trl["samples_per_s"]
    setting = (f"{args.prompts} prompts x G {args.generations}, <= {args.completion_length} tokens, "
               f"loss {args.loss_type}, beta {args.beta}")
    results = [
        BenchResult("grpo_samples_per_s_vs_trl", ratio, "ratio", ">= 1.3", "TRL 1.16 GRPOTrainer", check(ratio, ">= 1.3"),
                    note=setting),
        BenchResult("metalight_samples_per_s", ours["samples_per_s"], "samples/s", note=setting),
        BenchResult("trl_samples_per_s", trl["samples_per_s"], "samples/s", note=setting),
        BenchResult("metalight_step_time", ours["step_time"], "s", reference="median optimizer step"),
        BenchResult("trl_step_time", trl["step_time"], "s", reference="median optimizer step"),
    ]
    breakdown = {side: {k: round(v[k], 3) for k in (*PHASES, "step_time", "mean_length")}
                 for side, v in (("metalight", ours), ("trl", trl))}
    for side, phases in breakdown.items():
        print(side, " ".join(f"{k}={v}" for k, v in phases.items()))
    write_results("grpo", results, MODEL, invocation(),
                  extra={"setting": setting, "timed_steps": args.steps, "warmup_steps": args.warmup,
                         "seconds_per_phase": breakdown})


if __name__ == "__main__":
    main()
