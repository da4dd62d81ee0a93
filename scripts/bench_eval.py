"""Benchmark the dual-prompt evaluation against plain batched ``generate`` (same model, prompts, budget).

(a) questions/s of ``evaluate_records`` (direct + meta, both read-outs) / questions/s of plain HF
    ``model.generate`` on the same chat-templated direct prompts — target >= 0.8;
(b) P(yes) from one forward pass vs generating the meta answer with the default decoder: speed ratio
    (target >= 5; ``model.generate`` is timed too) and how often the two yes/no decisions agree.
Writes docs/benchmarks/eval.json.  Usage: python scripts/bench_eval.py [--questions 64] [--batch-size 32]
"""

from __future__ import annotations

import argparse

import torch

from metalight.benchmarking import BenchResult, check, invocation, timed, write_results
from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule
from metalight.evaluation.dual_prompt import EvalSettings, build_prompts, evaluate_records, meta_token_ids
from metalight.grading import parse_meta_answer
from metalight.models.generation import Decoding, generate, yes_probability
from metalight.models.loading import load_model

MODEL = "embedded:smollm2-135m-instruct"


def batches(items, size):
    return [items[i : i + size] for i in range(0, len(items), size)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, tokenizer = load_model(MODEL)
    records = FanOutQASingleHopDataModule(strict=False).records("val")[: args.questions]
    settings = EvalSettings()
    direct, meta = build_prompts(tokenizer, records, settings)
    plain_tokenizer_batches = [[p.text for p in b] for b in batches(direct, args.batch_size)]

    def plain_generate():
        for texts in plain_tokenizer_batches:
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                model.generate(**enc, max_new_tokens=32, do_sample=False, pad_token_id=tokenizer.pad_token_id)

    def dual(readout):
        s = EvalSettings(meta_readout=readout)
        return lambda: [
            r for b in batches(records, args.batch_size) for r in evaluate_records(model, tokenizer, b, s)
        ]

    n = len(records)
    t_plain, _ = timed(plain_generate, args.repeats)
    t_dual_gen, generated = timed(dual("generate"), args.repeats)
    t_dual_logits, _ = timed(dual("logits"), args.repeats)

    yes_ids, no_ids = meta_token_ids(tokenizer, settings)
    meta_batches = batches(meta, args.batch_size)
    t_meta_generate, meta_outs = timed(
        lambda: [generate(model, tokenizer, b, Decoding(max_new_tokens=32)) for b in meta_batches],
        args.repeats,
    )
    meta_texts = [t for out in meta_outs for t in out.texts]
    at_budget = sum(k == 32 for out in meta_outs for k in out.num_tokens) / n
    t_meta_hf, _ = timed(
        lambda: [
            generate(model, tokenizer, b, Decoding(max_new_tokens=32), decoder="hf") for b in meta_batches
        ],
        args.repeats,
    )
    t_meta_logits, p_yes = timed(
        lambda: torch.cat([yes_probability(model, tokenizer, b, yes_ids, no_ids) for b in meta_batches]),
        args.repeats,
    )
    generated_yes = [parse_meta_answer(t, "esma").said_yes for t in meta_texts]
    logit_yes = (p_yes > 0.5).tolist()
    agreement = sum(a == b for a, b in zip(generated_yes, logit_yes)) / n

    qps = {"plain": n / t_plain, "dual_generate": n / t_dual_gen, "dual_logits": n / t_dual_logits}
    results = [
        BenchResult(
            "dual_prompt_eval_logits_readout_vs_plain_generate",
            qps["dual_logits"] / qps["plain"],
            "ratio",
            ">= 0.8",
            "plain batched HF generate of the direct prompts",
        ),
        BenchResult(
            "dual_prompt_eval_generated_meta_vs_plain_generate",
            qps["dual_generate"] / qps["plain"],
            "ratio",
            ">= 0.8",
            "plain batched HF generate of the direct prompts",
            note=f"direct and meta prompts share one decode loop; {at_budget:.0%} of the raw-prompt meta "
            f"answers run to the 32-token budget on this model",
        ),
        BenchResult(
            "p_yes_logits_vs_generated_meta_answer",
            t_meta_generate / t_meta_logits,
            "speedup",
            ">= 5",
            "generating the meta answer (32-token budget) with the default decoder (finished rows leave "
            "the batch)",
        ),
        BenchResult(
            "p_yes_logits_vs_model_generate_meta_answer",
            t_meta_hf / t_meta_logits,
            "speedup",
            None,
            "generating the meta answer with model.generate (decoder: hf, upstream's way)",
        ),
        BenchResult(
            "yes_no_agreement_logits_vs_generated",
            agreement,
            "fraction",
            None,
            "ESMA yes-substring rule on the generated meta answer",
            note=f"generated yes-rate {sum(generated_yes) / n:.3f}, logit (P>0.5) yes-rate "
            f"{sum(logit_yes) / n:.3f}",
        ),
        BenchResult("plain_generate_questions_per_s", qps["plain"], "q/s"),
        BenchResult("dual_prompt_eval_generate_questions_per_s", qps["dual_generate"], "q/s"),
        BenchResult("dual_prompt_eval_logits_questions_per_s", qps["dual_logits"], "q/s"),
    ]
    for r in results:
        if r.target:
            r.met = check(r.value, r.target)
    accuracy = sum(r.correct for r in generated) / n
    write_results(
        "eval",
        results,
        MODEL,
        invocation(),
        {
            "questions": n,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "max_new_tokens": 32,
            "accuracy_on_these_questions": accuracy,
        },
    )


if __name__ == "__main__":
    main()
