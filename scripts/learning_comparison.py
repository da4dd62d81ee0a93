"""Which method teaches the embedded SmolLM2-135M to know what it knows fastest, at equal CPU time?

Every arm trains from the same base model for the same budget of process CPU time (one torch thread, so CPU
minutes are minutes of one core; ``metalight.callbacks.cpu_budget.CPUTimeLimit``), then answers the same
held-out questions: FanOutQA single-hop validation questions (never in any training pool: FanOutQA splits by
top-level question) plus EHQ-3000 questions, a different dataset the model should decline. Each arm's held-out
d′type2, AUROC₂ (from first-token P(yes)), accuracy and yes ratio get 95% bootstrap intervals, and the change
from the base model a paired 95% interval (``metalight.evaluation.intervals``).

    python scripts/learning_comparison.py pool                 # the balanced training pool (base model's answers)
    python scripts/learning_comparison.py run --minutes 8      # every arm, two at a time (one core each)
    python scripts/learning_comparison.py report --update-docs # tables, curves, and docs/esma.md's section
    # a check in ~3 minutes:
    python scripts/learning_comparison.py pool --pool-questions 40 --out /tmp/lc
    python scripts/learning_comparison.py run --minutes 0.5 --heldout 20 --arms esma_brier --out /tmp/lc
    python scripts/learning_comparison.py report --out /tmp/lc

Arms (``ARMS``): ESMA at the paper's settings, ESMA as the old quickstart, ESMA with the continuous
``brier_alignment`` reward, ESMA's SFT meta-answer baseline and Know-thyself judgment training.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

from metalight.io import atomic_write_json, atomic_write_text

OUT = Path("runs/comparison")
DOC, BEGIN, END = Path("docs/esma.md"), "<!-- comparison:begin -->", "<!-- comparison:end -->"
POOL_QUESTIONS = 900  # FanOutQA train-split questions answered to build the balanced pool
CPU_LIMIT = "metalight.callbacks.cpu_budget.CPUTimeLimit"
# The training pool of the arms that use it: the base model's right answers and as many wrong ones.
POOL_DATA = ["--data.class_path", "metalight.data.sources.nq_open.NQOpenDataModule",
             "--data.init_args.val_fraction", "0.0", "--data.init_args.test_fraction", "0.0"]
ESMA = ["--config", "configs/esma/quickstart.yaml"]
# Gradient arms run epochs until the budget ends, at their config's learning rate (a warm-up/decay schedule
# needs a known run length).
OPEN_ENDED = ["--trainer.max_epochs", "-1", "--model.init_args.lr_scheduler", "null"]
ARMS: dict[str, dict] = {
    # ESMA's paper settings (reward, full-rank noise member by member, N = 32, σ, α, raw meta prompt,
    # generated meta answers); only the questions per iteration are cut (256 -> 8) to fit a CPU.
    "esma_paper": {"prompt": "raw", "args": [*ESMA, "--model.init_args.noise", "esma", "--model.init_args.rank", "1",
                                             "--model.init_args.antithetic", "false",
                                             "--model.init_args.population_size", "32",
                                             "--model.init_args.engine.population", "sequential"]},
    # The previous `make demo` job: low-rank batched, 8 members x 8 questions, the binary esma reward.
    "esma_quickstart": {"prompt": "raw", "args": ESMA},
    # The continuous reward on the balanced pool, the meta question through the chat template, P(yes) read
    # from one forward pass (no meta generation).
    "esma_brier": {"prompt": "chat", "pool": True,
                   "args": ["--config", "configs/esma/brier.yaml"]},
    # The same with a 6x larger step (α = 3e-3): minutes of ES take few iterations.
    "esma_brier_fast": {"prompt": "chat", "pool": True,
                        "args": ["--config", "configs/esma/brier.yaml", "--model.init_args.optimizer.lr", "3.0e-3"]},
    # ESMA's joint reward with the Brier alignment (correctness stays in the fitness), the larger step; the
    # longest run (15 CPU minutes: the cap).
    "esma_joint_brier_long": {"prompt": "chat", "pool": True,
                              "args": ["--config", "configs/esma/brier.yaml", "--model.init_args.reward", "esma_brier",
                                       "--model.init_args.optimizer.lr", "3.0e-3"]},
    # ESMA's SFT baseline: train the meta answer (yes when the base model was right, else no).
    "sft_meta_answer": {"prompt": "raw", "pool": True,
                        "args": ["--config", "configs/sft/meta_answer_quickstart.yaml", *OPEN_ENDED]},
    # Know-thyself: judgment training (can / cannot) from the model's own sampled answers, re-collected per epoch.
    "judgment": {"prompt": "raw", "pool": True, "judgment": True,
                 "args": ["--config", "configs/judgment/quickstart.yaml", *OPEN_ENDED,
                          "--model.init_args.schedule_per_epoch", "false"]},
}


def held_out(n: int):
    """FanOutQA single-hop validation questions + EHQ questions (n of each)."""
    from metalight.data.sources.ehq import EHQDataModule
    from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule

    fanout = FanOutQASingleHopDataModule(strict=False, max_samples={"val": n}).records("val")
    ehq = EHQDataModule(stratify="category", max_samples={"val": n}).records("val")
    return fanout + ehq


def settings(prompt: str):
    """The held-out evaluation: ESMA's protocol, P(yes) read from logits, the meta question raw or chat."""
    from metalight.evaluation.dual_prompt import EvalSettings

    return EvalSettings(meta_readout="logits", meta_chat_template="never" if prompt == "raw" else "auto")


def evaluate(model, tokenizer, prompt: str, heldout: int, path: Path) -> None:
    """Answer the held-out questions and write one JSON line per question (dataset, correct, said_yes, p_yes)."""
    from metalight.evaluation.dual_prompt import evaluate_records

    records = held_out(heldout)
    model.eval()
    results = evaluate_records(model, tokenizer, records, settings(prompt))
    lines = [json.dumps({"id": r.id, "dataset": "fanoutqa" if i < heldout else "ehq", "correct": r.correct,
                         "said_yes": r.said_yes, "p_yes": r.p_yes}) for i, r in enumerate(results)]
    atomic_write_text(path, "\n".join(lines) + "\n")


def build_pool(out: Path, questions: int, seed: int = 0) -> Path:
    """Answer FanOutQA train-split questions with the base model; write its right answers and as many wrong
    ones (seeded) as NQ-Open rows ``{"question", "answer": [aliases]}``."""
    import random

    from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule
    from metalight.evaluation.dual_prompt import evaluate_records
    from metalight.models.loading import load_model

    records = FanOutQASingleHopDataModule(strict=False).records("train")[:questions]
    model, tokenizer = load_model("embedded:smollm2-135m-instruct")
    results = evaluate_records(model.eval(), tokenizer, records, settings("raw"))
    right = [rec for rec, res in zip(records, results) if res.correct]
    wrong = [rec for rec, res in zip(records, results) if not res.correct]
    chosen = right + random.Random(seed).sample(wrong, min(len(wrong), len(right)))
    random.Random(seed).shuffle(chosen)
    path = out / "pool.jsonl"
    atomic_write_text(path, "".join(json.dumps({"question": r.question, "answer": list(r.answers)}) + "\n"
                                    for r in chosen))
    print(f"pool: {len(right)} right of {len(records)} answered, {len(chosen)} rows -> {path}")
    return path


def train_arm(name: str, minutes: float, heldout: int, out: Path) -> None:
    """Train one arm for ``minutes`` CPU minutes and evaluate it (in this process, one torch thread)."""
    import torch

    from metalight.callbacks.report_writer import run_dir
    from metalight.cli import main as cli

    torch.set_num_threads(1)
    arm = ARMS[name]
    args = list(arm["args"])
    if arm.get("pool"):
        pool = str(out / "pool.jsonl")
        if arm.get("judgment"):
            args += ["--data.init_args.source.class_path", "metalight.data.sources.nq_open.NQOpenDataModule",
                     "--data.init_args.source.init_args.path", pool,
                     "--data.init_args.source.init_args.val_fraction", "0.0",
                     "--data.init_args.source.init_args.test_fraction", "0.0"]
        else:
            args += [*POOL_DATA, "--data.init_args.path", pool]
    start = time.process_time()
    run = cli(["fit", *args, "--trainer.max_steps", "-1", "--trainer.limit_val_batches", "0",
               "--trainer.logger.init_args.save_dir", str(out / "logs"),
               "--trainer.logger.init_args.name", name,
               f"--trainer.callbacks+={CPU_LIMIT}", f"--trainer.callbacks.minutes={minutes}"])
    trained = time.process_time() - start
    evaluate(run.model.model, run.model.tokenizer, arm["prompt"], heldout, out / f"{name}.jsonl")
    atomic_write_json(out / f"{name}.json", {"arm": name, "args": args, "cpu_minutes": trained / 60,
                                             "steps": run.trainer.global_step, "log_dir": str(run_dir(run.trainer))})


def baseline(prompt: str, heldout: int, out: Path) -> None:
    """Evaluate the untrained base model with the raw or chat meta question."""
    import torch

    from metalight.models.loading import load_model

    torch.set_num_threads(1)
    model, tokenizer = load_model("embedded:smollm2-135m-instruct")
    evaluate(model, tokenizer, prompt, heldout, out / f"base_{prompt}.jsonl")


def run_all(arms: list[str], minutes: float, heldout: int, out: Path, parallel: int) -> None:
    """The baselines not yet measured in ``out`` and every arm, as separate one-thread processes, ``parallel``
    at a time."""
    prompts = sorted(p for p in {ARMS[a]["prompt"] for a in arms} if not (out / f"base_{p}.jsonl").exists())
    jobs = [["baseline", prompt] for prompt in prompts] + [["arm", a] for a in arms]  # a baseline once per out
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    running: list[tuple[list[str], subprocess.Popen]] = []
    while jobs or running:
        while jobs and len(running) < parallel:
            job = jobs.pop(0)
            log = open(out / f"{job[1]}.log", "w")  # noqa: SIM115 (closed with the process)
            cmd = [sys.executable, __file__, "_" + job[0], job[1], "--minutes", str(minutes), "--heldout",
                   str(heldout), "--out", str(out)]
            running.append((job, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)))
            print(f"{datetime.datetime.now():%H:%M:%S} started {job[1]}", flush=True)
        time.sleep(5)
        for item in list(running):
            job, proc = item
            if proc.poll() is not None:
                running.remove(item)
                status = "done" if proc.returncode == 0 else f"FAILED (rc {proc.returncode}, see {out}/{job[1]}.log)"
                print(f"{datetime.datetime.now():%H:%M:%S} {job[1]} {status}", flush=True)


def answers(path: Path, dataset: str | None = None) -> list[SimpleNamespace]:
    """The held-out answers an evaluation wrote (only ``dataset``'s, if given)."""
    rows = [SimpleNamespace(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if dataset is None or r.dataset == dataset]


def arm_result(out: Path, name: str) -> dict:
    """An arm's held-out numbers: pooled, FanOutQA-only and EHQ-only, each before / after / paired change."""
    from metalight.evaluation.intervals import held_out_intervals, paired_change

    meta = json.loads((out / f"{name}.json").read_text())
    result = {"arm": name, "cpu_minutes": meta["cpu_minutes"], "steps": meta["steps"], "prompt": ARMS[name]["prompt"],
              "log_dir": meta["log_dir"]}
    for part in (None, "fanoutqa", "ehq"):
        before = answers(out / f"base_{ARMS[name]['prompt']}.jsonl", part)
        after = answers(out / f"{name}.jsonl", part)
        key = part or "pooled"
        result[key] = {"n": len(after),
                       **{side: {k: v.as_dict() for k, v in held_out_intervals(rows).items()}
                          for side, rows in (("before", before), ("after", after))},
                       "change": {k: v.as_dict() for k, v in paired_change(before, after).items()}}
    return result


def curves(results: list[dict], out: Path) -> Path:
    """Training reward (ESMA: mean member fitness) or loss (gradient arms) against CPU minutes, one panel per
    arm kind, from the TensorBoard logs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for result in results:
        events = EventAccumulator(result["log_dir"], size_guidance={"scalars": 0})
        events.Reload()
        tags = set(events.Tags()["scalars"])
        tag, ax = ("train/reward_mean", axes[0]) if "train/reward_mean" in tags else ("train/loss", axes[1])
        if tag not in tags:
            continue
        points = events.Scalars(tag)
        start = points[0].wall_time
        ax.plot([(p.wall_time - start) / 60 for p in points], [p.value for p in points], marker=".",
                label=result["arm"])
    axes[0].set(title="ESMA arms: mean member fitness", xlabel="wall-clock minutes after the first step", ylabel="reward")
    axes[1].set(title="gradient arms: training loss", xlabel="wall-clock minutes after the first step", ylabel="loss")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "training_curves.png"
    fig.savefig(path, dpi=110)
    return path


def fmt(cell: dict) -> str:
    """``value [low, high] p=…`` with 3 decimals (``n/a`` when undefined)."""
    if cell["value"] is None:
        return "n/a"
    text = f"{cell['value']:+.3f} [{cell['low']:+.3f}, {cell['high']:+.3f}]"
    return text if cell.get("p_value") is None else f"{text} p={cell['p_value']:.3f}"


def table(results: list[dict]) -> str:
    """The markdown table of every arm: held-out before → after and the paired change with its 95% interval."""
    head = ("| arm | CPU min | steps | d′type2 (pooled) before → after, change [95% CI] p | AUROC₂ (pooled) before → "
            "after, change [95% CI] p | AUROC₂ (FanOutQA) change [95% CI] p | accuracy (pooled) | yes ratio on EHQ "
            "before → after |\n|---|---|---|---|---|---|---|---|")
    rows = []
    for r in results:
        p, f, e = r["pooled"], r["fanoutqa"], r["ehq"]
        rows.append(
            f"| `{r['arm']}` | {r['cpu_minutes']:.1f} | {r['steps']} | "
            f"{p['before']['dprime_type2']['value']:.3f} → {p['after']['dprime_type2']['value']:.3f}, "
            f"{fmt(p['change']['dprime_type2'])} | {p['before']['auroc_type2']['value']:.3f} → "
            f"{p['after']['auroc_type2']['value']:.3f}, {fmt(p['change']['auroc_type2'])} | "
            f"{fmt(f['change']['auroc_type2'])} | {p['before']['accuracy']['value']:.3f} → "
            f"{p['after']['accuracy']['value']:.3f} | {e['before']['yes_ratio']['value']:.3f} → "
            f"{e['after']['yes_ratio']['value']:.3f} |")
    return "\n".join([head, *rows])


def write_report(out: Path, arms: list[str], update_docs: bool = False) -> None:
    """results.json, results.md and the training curves under ``out``; with ``update_docs``, the section of
    docs/esma.md too."""
    import platform

    import torch

    results = [arm_result(out, a) for a in arms]
    atomic_write_json(out / "results.json", {"measured": datetime.date.today().isoformat(), "arms": results})
    figure = curves(results, out)
    n = results[0]["pooled"]["n"] if results else 0
    text = (f"Measured {datetime.date.today().isoformat()} on a {os.cpu_count()}-core CPU ({platform.machine()}, one "
            f"torch thread per arm, two arms at a time), torch {torch.__version__}; held-out n = {n}: "
            f"{n // 2} FanOutQA single-hop validation + {n // 2} EHQ-3000 questions "
            f"(`python scripts/learning_comparison.py run`, then `report --update-docs`).\n\n{table(results)}\n")
    atomic_write_text(out / "results.md", text)
    print(text)
    if update_docs and DOC.exists():
        doc = DOC.read_text()
        if BEGIN in doc and END in doc:
            (DOC.parent / "esma_comparison").mkdir(exist_ok=True)
            target = DOC.parent / "esma_comparison" / figure.name
            target.write_bytes(figure.read_bytes())
            section = f"{BEGIN}\n{text}\n![training curves](esma_comparison/{figure.name})\n{END}"
            atomic_write_text(DOC, doc[:doc.index(BEGIN)] + section + doc[doc.index(END) + len(END):])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["pool", "run", "report", "_arm", "_baseline"])
    parser.add_argument("name", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--minutes", type=float, default=8.0, help="CPU minutes of training per arm (default 8)")
    parser.add_argument("--heldout", type=int, default=200, help="held-out questions per dataset (default 200)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS), help="arms to run")
    parser.add_argument("--parallel", type=int, default=2, help="arms at a time, one core each (default 2)")
    parser.add_argument("--pool-questions", type=int, default=POOL_QUESTIONS,
                        help=f"FanOutQA train questions answered for the pool (default {POOL_QUESTIONS})")
    parser.add_argument("--update-docs", action="store_true", help="report: also rewrite docs/esma.md's section")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default {OUT})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.command == "pool":
        build_pool(args.out, args.pool_questions)
    elif args.command == "run":
        if any(ARMS[a].get("pool") for a in args.arms) and not (args.out / "pool.jsonl").exists():
            parser.error(f"{args.out}/pool.jsonl is missing: run `python scripts/learning_comparison.py pool "
                         f"--out {args.out}` first")
        run_all(args.arms, args.minutes, args.heldout, args.out, args.parallel)
    elif args.command == "_arm":
        train_arm(args.name, args.minutes, args.heldout, args.out)
    elif args.command == "_baseline":
        baseline(args.name, args.heldout, args.out)
    else:
        write_report(args.out, [a for a in args.arms if (args.out / f"{a}.jsonl").exists()], args.update_docs)


if __name__ == "__main__":
    main()
