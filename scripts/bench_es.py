"""ESMA's member-by-member loop against plain inference, on the embedded model (CPU or GPU).

(a) population evaluation throughput (perturb, evaluate, restore per member) / plain batched evaluation of
    the same prompts with the unperturbed model, interleaved member by member (target >= 0.9);
(b) perturb + restore + update (gradient rebuild + SGD step) as a share of one ES iteration (target <= 5%);
(c) peak extra memory of perturb + restore beyond the model, measured in a fresh process (target <= the
    largest parameter tensor + 10%); the update's extra memory (p.grad) is reported beside it.

    python scripts/bench_es.py            # 8 members x 32 questions (about 10 minutes on a quiet 2-core CPU)
    # the paper's questions per iteration:
    python scripts/bench_es.py --members 2 --questions 256 --area es_256q
    python scripts/bench_es.py --quick    # 2 members x 4 questions, 8 new tokens (checks the script)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from metalight.benchmarking import BenchResult, check, invocation, timed, write_results
from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule
from metalight.evaluation.dual_prompt import EvalSettings, evaluate_records
from metalight.methods.esma.noise import make_scheme
from metalight.methods.esma.perturb import add_noise_
from metalight.methods.esma.rewards import esma_reward, member_fitness
from metalight.methods.esma.selection import select_parameters
from metalight.methods.esma.update import member_seeds, shape_fitness, write_es_gradient
from metalight.models.loading import load_model

MODEL = "embedded:smollm2-135m-instruct"
SIGMA, ALPHA = 1e-3, 5e-4


def questions(count: int):
    """``count`` FanOutQA single-hop train questions (seeded)."""
    records = FanOutQASingleHopDataModule(strict=False, max_samples={"train": count}).records("train")
    return records[:count]


def timed_once(fn):
    """(seconds, result) of one call, synchronised on GPU."""
    return timed(fn, repeats=1, warmup=0)


def population_vs_plain(model, tokenizer, records, members: int, settings: EvalSettings, device: str) -> dict:
    """Times of (a) and (b): per member, a plain evaluation then perturb / evaluate / restore."""
    scheme = make_scheme("esma", select_parameters(model))
    population = member_seeds(0, 0, members)
    evaluate_records(model, tokenizer, records[:2], settings)  # warm-up
    plain, evaluate, perturb, fitness = [], [], [], []
    for member in population:
        plain.append(timed_once(lambda: evaluate_records(model, tokenizer, records, settings))[0])
        t_add, _ = timed_once(lambda member=member: add_noise_(scheme, member.seed, SIGMA))
        t_eval, results = timed_once(lambda: evaluate_records(model, tokenizer, records, settings))
        t_sub, _ = timed_once(lambda member=member: add_noise_(scheme, member.seed, -SIGMA))
        evaluate.append(t_eval)
        perturb.append(t_add + t_sub)
        fitness.append(member_fitness("esma", esma_reward, records, results))
    optimizer = torch.optim.SGD(model.parameters(), lr=ALPHA)
    weights, _ = shape_fitness(torch.tensor(fitness))
    t_update, _ = timed_once(
        lambda: (
            write_es_gradient(scheme, population, weights),
            optimizer.step(),
            optimizer.zero_grad(set_to_none=True),
        )
    )
    return {"plain_s": plain, "evaluate_s": evaluate, "perturb_restore_s": perturb, "update_s": t_update}


def memory_child(members: int) -> None:
    """(c), run in a fresh process: peak extra memory of perturb + restore, then of the update."""
    from metalight.benchmarking import PeakMemory

    model, _ = load_model(MODEL)
    warm_up = make_scheme("esma", select_parameters(model))
    add_noise_(warm_up, 0, SIGMA)  # allocator and generator warm-up, with a scheme of its own
    add_noise_(warm_up, 0, -SIGMA)
    del warm_up
    population = member_seeds(0, 0, members)
    with PeakMemory() as cycle:
        scheme = make_scheme("esma", select_parameters(model))  # its noise scratch buffer counts
        for member in population:
            add_noise_(scheme, member.seed, SIGMA)
            add_noise_(scheme, member.seed, -SIGMA)
    optimizer = torch.optim.SGD(model.parameters(), lr=ALPHA)
    with PeakMemory() as update:
        write_es_gradient(scheme, population, torch.linspace(-1, 1, members, dtype=torch.float64))
        optimizer.step()
    largest = max(p.numel() * p.element_size() for p in model.parameters())
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    print(
        json.dumps(
            {
                "perturb_restore_extra": cycle.extra,
                "update_extra": update.extra,
                "largest_tensor": largest,
                "model_bytes": total,
            }
        )
    )


def memory(members: int) -> dict:
    """Run :func:`memory_child` in a subprocess with large allocations returned to the OS on free."""
    env = {
        **os.environ,
        "MALLOC_MMAP_THRESHOLD_": "65536",
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
    }
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(members)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 members x 4 questions, 8 new tokens")
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--area", default="es", help="results go to docs/benchmarks/<area>.json")
    parser.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        return memory_child(args.memory_child)
    members, count, new_tokens = (2, 4, 8) if args.quick else (args.members, args.questions, 32)
    settings = EvalSettings(max_new_tokens=new_tokens)
    model, tokenizer = load_model(MODEL)
    model.to(args.device)
    times = population_vs_plain(model, tokenizer, questions(count), members, settings, args.device)
    population = sum(times["evaluate_s"]) + sum(times["perturb_restore_s"])
    iteration = population + times["update_s"]
    overhead = sum(times["perturb_restore_s"]) + times["update_s"]
    mem = memory(members)
    ratio = sum(times["plain_s"]) / population
    share = overhead / iteration
    limit = 1.1 * mem["largest_tensor"]
    results = [
        BenchResult(
            "population_eval_throughput_vs_plain",
            ratio,
            "ratio",
            ">= 0.9",
            "plain evaluate_records of the same prompts, unperturbed",
            check(ratio, ">= 0.9"),
            f"{members} members x {count} questions (direct + generated meta), interleaved",
        ),
        BenchResult(
            "perturb_restore_update_share",
            share,
            "fraction",
            "<= 0.05",
            "one ES iteration",
            check(share, "<= 0.05"),
            f"perturb+restore {sum(times['perturb_restore_s']):.2f} s, update "
            f"{times['update_s']:.2f} s of {iteration:.1f} s",
        ),
        BenchResult(
            "perturb_restore_peak_extra_memory",
            mem["perturb_restore_extra"] / 2**20,
            "MiB",
            f"<= {limit / 2**20:.1f}",
            "largest parameter tensor + 10%",
            mem["perturb_restore_extra"] <= limit,
            "resident set sampled every 0.5 ms in a fresh process",
        ),
        BenchResult(
            "update_peak_extra_memory",
            mem["update_extra"] / 2**20,
            "MiB",
            None,
            f"model size {mem['model_bytes'] / 2**20:.0f} MiB",
            None,
            "p.grad for the torch optimizer is one copy of "
            "the perturbed parameters (the gradient is rebuilt with one float32 tensor at a time)",
        ),
    ]
    command = invocation()
    write_results(
        args.area,
        results,
        MODEL,
        command,
        extra={
            "settings": {
                "members": members,
                "questions": count,
                "max_new_tokens": new_tokens,
                "sigma": SIGMA,
                "noise": "esma",
                "restore": "subtract",
                "device": args.device,
                "threads": args.threads,
            },
            "raw_seconds": times,
        },
    )


if __name__ == "__main__":
    main()
