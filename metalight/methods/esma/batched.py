"""The batched engine's evaluation: a group of ``lowrank`` members answers in one batch.

All (member × question × prompt) rows of a group go through one decode loop; a selected Linear adds each
row's member term (:class:`metalight.methods.esma.lowrank_forward.LowRankPopulation`), so the weights are never
edited. Answers are scored with the core's :func:`metalight.evaluation.dual_prompt.score_answers`, so a member's
results are the same records the validation metrics are computed from, and they equal the member's answers
under explicitly perturbed weights (tested).
"""

from __future__ import annotations

from metalight.evaluation.dual_prompt import (
    EvalSettings,
    SampleResult,
    build_prompts,
    meta_token_ids,
    score_answers,
)
from metalight.methods.esma.lowrank_forward import LowRankPopulation
from metalight.models.generation import Decoding, encode_prompts, p_yes_from_logits
from metalight.models.row_decoding import decode_rows, last_token_logits


def evaluate_rows(model, tokenizer, records, settings: EvalSettings, num_members: int,
                  population: LowRankPopulation, prefix_cache: bool) -> list[list[SampleResult]]:
    """Evaluate ``num_members`` copies of ``records`` in one batch (rows member-major); ``population``
    perturbs each row by its member. Returns one result list per member."""
    direct, meta = build_prompts(tokenizer, records, settings)
    direct_ids = encode_prompts(tokenizer, direct, settings.max_input_tokens, settings.truncation_side)
    meta_ids = encode_prompts(tokenizer, meta, settings.max_input_tokens, settings.truncation_side)
    ids = meta_token_ids(tokenizer, settings)
    capture = (ids[0] + ids[1]) if ids else None
    decoding = Decoding(max_new_tokens=settings.max_new_tokens, strategy=settings.decoding)
    n = len(records)
    generate_meta = settings.meta_readout == "generate"
    per_member = direct_ids + meta_ids if generate_meta else direct_ids

    keys = [m for m in range(num_members) for _ in per_member]
    out = decode_rows(model, tokenizer, [row for _ in range(num_members) for row in per_member], decoding,
                      capture if generate_meta else None, keys, population.row_context(keys), prefix_cache)
    if not generate_meta:
        meta_keys = [m for m in range(num_members) for _ in meta_ids]
        meta_logits = last_token_logits(model, tokenizer, [row for _ in range(num_members) for row in meta_ids],
                                        capture, meta_keys, population.row_context(meta_keys), prefix_cache)
    results = []
    for m in range(num_members):
        start = m * len(per_member)
        answers = out.texts[start:start + n]
        if generate_meta:
            meta_texts = out.texts[start + n:start + 2 * n]
            p_yes = (p_yes_from_logits(out.first_token_logits[start + n:start + 2 * n], len(ids[0])).tolist()
                     if ids else [float("nan")] * n)
        else:
            meta_texts = None
            p_yes = p_yes_from_logits(meta_logits[m * n:(m + 1) * n], len(ids[0])).tolist()
        direct_completions = [out.generated_ids(start + i) for i in range(n)]
        results.append(score_answers(records, direct, meta, answers, meta_texts, p_yes, settings, direct_completions))
    return results

