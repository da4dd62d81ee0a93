"""The batched engine's evaluation: a group of ``lowrank`` members answers in one batch.

All (member × question × prompt) rows of a group go through one decode loop; a selected Linear adds each
row's member term (:class:`metalight.methods.esma.lowrank_forward.LowRankPopulation`), so the weights are
never edited. Answers are scored with the core's :func:`metalight.evaluation.dual_prompt.score_answers`, so a
member's results are the same records the validation metrics are computed from, and they equal the member's
answers under explicitly perturbed weights (tested).

With a :class:`~metalight.methods.esma.trunk.SharedTrunk` (every perturbed layer at or above its ``first``),
the unperturbed layers run once per prompt (and per distinct generated history) instead of once per row; the
same function then also evaluates one member whose noise is in the weights (``population=None``).
"""

from __future__ import annotations

from dataclasses import replace

from metalight.evaluation.dual_prompt import (
    EvalSettings,
    SampleResult,
    build_prompts,
    meta_token_ids,
    score_answers,
    sent_prompts,
)
from metalight.methods.esma.lowrank_forward import LowRankPopulation
from metalight.methods.esma.trunk import SharedTrunk
from metalight.models.decoding import Generation, stop_token_ids
from metalight.models.generation import Decoding, encode_prompts, p_yes_from_logits
from metalight.models.row_decoding import decode_rows, last_token_logits
from metalight.models.shared_prompts import top_prefill
from metalight.models.split_decoding import decode_split


def evaluate_rows(
    model,
    tokenizer,
    records,
    settings: EvalSettings,
    num_members: int,
    population: LowRankPopulation | None,
    prefix_cache: bool,
    trunk: SharedTrunk | None = None,
) -> list[list[SampleResult]]:
    """Evaluate ``num_members`` copies of ``records`` in one batch (rows member-major); ``population``
    perturbs each row by its member (``None``: the weights already hold the one member's noise). With
    ``trunk``, the layers below its end run once per prompt. Returns one result list per member."""
    direct, meta = build_prompts(tokenizer, records, settings)
    direct_ids = encode_prompts(tokenizer, direct, settings.max_input_tokens, settings.truncation_side)
    meta_ids = encode_prompts(tokenizer, meta, settings.max_input_tokens, settings.truncation_side)
    ids = meta_token_ids(tokenizer, settings)
    capture = (ids[0] + ids[1]) if ids else None
    decoding = Decoding(max_new_tokens=settings.max_new_tokens, strategy=settings.decoding)
    n = len(records)
    generate_meta = settings.meta_readout == "generate"
    per_member = direct_ids + meta_ids if generate_meta else direct_ids
    if trunk is not None:
        out, yes_no = _shared_rows(
            model,
            tokenizer,
            trunk,
            direct_ids + meta_ids,
            num_members,
            population,
            len(per_member),
            capture,
            decoding,
            prefix_cache,
        )
    else:
        keys = [m for m in range(num_members) for _ in per_member]
        context = population.row_context(keys) if population is not None else None
        out = decode_rows(
            model,
            tokenizer,
            [row for _ in range(num_members) for row in per_member],
            decoding,
            capture if generate_meta else None,
            keys,
            context,
            prefix_cache,
        )
        yes_no = None
        if not generate_meta:
            meta_keys = [m for m in range(num_members) for _ in meta_ids]
            yes_no = last_token_logits(
                model,
                tokenizer,
                [row for _ in range(num_members) for row in meta_ids],
                capture,
                meta_keys,
                population.row_context(meta_keys) if population is not None else None,
                prefix_cache,
            )
    sent_direct, cut_direct = sent_prompts(tokenizer, direct, settings.max_input_tokens)
    sent_meta, cut_meta = sent_prompts(tokenizer, meta, settings.max_input_tokens)
    results = []
    for m in range(num_members):
        start = m * len(per_member)
        answers = out.texts[start : start + n]
        if generate_meta:
            meta_texts = out.texts[start + n : start + 2 * n]
            p_yes = (
                p_yes_from_logits(out.first_token_logits[start + n : start + 2 * n], len(ids[0])).tolist()
                if ids
                else [float("nan")] * n
            )
        else:
            meta_texts = None
            p_yes = p_yes_from_logits(yes_no[m * n : (m + 1) * n], len(ids[0])).tolist()
        direct_completions = [out.generated_ids(start + i) for i in range(n)]
        member = score_answers(
            records, sent_direct, sent_meta, answers, meta_texts, p_yes, settings, direct_completions
        )
        for result, d_cut, m_cut in zip(member, cut_direct, cut_meta):
            result.prompt_truncated = d_cut or m_cut
        results.append(member)
    return results


def _shared_rows(
    model,
    tokenizer,
    trunk: SharedTrunk,
    prompts,
    num_members: int,
    population: LowRankPopulation | None,
    decoded: int,
    capture,
    decoding: Decoding,
    prefix_cache: bool,
) -> tuple[Generation, object]:
    """The decoded rows (the first ``decoded`` prompts of each member) and, for the logits read-out, the
    meta rows' yes/no logits [members × meta prompts, ids], with the trunk shared."""
    states = trunk.states(prompts, tokenizer.pad_token_id, prefix_cache)
    keys = [m for m in range(num_members) for _ in prompts]
    context = population.row_context(keys) if population is not None else None
    top = top_prefill(trunk.split, states, num_members, context, range(decoded), capture)
    out = decode_split(
        trunk.split, tokenizer, states, top, decoding, stop_token_ids(model, tokenizer), context
    )
    yes_no = None
    if top.captured is not None:
        per_member = top.captured.view(num_members, len(prompts), -1)
        if decoded == len(prompts):  # generated meta answers: the first token's logits come with them
            out.first_token_logits = per_member.reshape(num_members * len(prompts), -1).cpu()
        else:
            yes_no = per_member[:, decoded:].reshape(-1, per_member.shape[-1]).cpu()
    return out, yes_no


def shared_meta_p_yes(
    model,
    tokenizer,
    records,
    settings: EvalSettings,
    num_members: int,
    population: LowRankPopulation | None,
    prefix_cache: bool,
    trunk: SharedTrunk,
) -> list[list[float]]:
    """P(yes) of every record's meta prompt for each of ``num_members`` members (one list per member) with the
    trunk shared: the trunk prefills the meta prompts once, each member runs only the top (the meta read-out
    alone, as :func:`metalight.methods.esma.meta_only.meta_p_yes_rows` without the shared trunk)."""
    _, meta = build_prompts(tokenizer, records, settings)
    yes_ids, no_ids = meta_token_ids(tokenizer, replace(settings, meta_readout="logits"))
    prompts = encode_prompts(tokenizer, meta, settings.max_input_tokens, settings.truncation_side)
    states = trunk.states(prompts, tokenizer.pad_token_id, prefix_cache)
    keys = [m for m in range(num_members) for _ in prompts]
    context = population.row_context(keys) if population is not None else None
    top = top_prefill(trunk.split, states, num_members, context, [], list(yes_ids) + list(no_ids))
    p_yes = p_yes_from_logits(top.captured.cpu(), len(yes_ids))
    n = len(records)
    return [p_yes[m * n : (m + 1) * n].tolist() for m in range(num_members)]
