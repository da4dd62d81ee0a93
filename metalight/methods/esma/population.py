"""Evaluate population members on the iteration's questions: one after another with in-place noise, or
(``lowrank``) many members in one batch with per-row low-rank perturbations.

* ``sequential``: for each member, θ ← θ + sσε, evaluate with the core's
  :func:`metalight.evaluation.dual_prompt.evaluate_records`, restore (any scheme). ``decoder`` picks its decoder: the
  row-dropping loop of :mod:`metalight.models.row_decoding` (``compact``) or ``model.generate`` (``hf``).
* ``batched`` (``lowrank`` only): members are split into groups; all (member × question × prompt) rows
  of a group go through one decode loop, a selected Linear adding each row's member term. The group size is
  ``members_per_batch`` or the most members whose working memory fits ``max_memory_gb``.

Both score answers with the core's :func:`metalight.evaluation.dual_prompt.score_answers`, so a member's results are
the same records the validation metrics are computed from.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import torch

from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import (
    EvalSettings,
    SampleResult,
    build_prompts,
    evaluate_records,
    meta_token_ids,
    score_answers,
)
from metalight.methods.esma.lowrank_forward import LowRankPopulation
from metalight.methods.esma.noise import LowRankNoise, NoiseScheme
from metalight.methods.esma.perturb import RestoreMode, perturbed
from metalight.methods.esma.update import Member
from metalight.models.generation import Decoder, Decoding, encode_prompts, p_yes_from_logits
from metalight.models.row_decoding import decode_rows, last_token_logits

PopulationMode = Literal["sequential", "batched"]


@dataclass(frozen=True)
class EngineSettings:
    """How the population is evaluated (see module docstring).

    Args:
        population: ``sequential`` (member by member, in-place noise) or ``batched`` (``lowrank`` only).
        decoder: ``compact`` (drops finished rows), ``hf`` (``model.generate``) or ``auto`` (``compact``
            unless ``decoding: model_default``); ``batched`` always uses ``compact``.
        members_per_batch: members evaluated together in ``batched`` mode (default: from ``max_memory_gb``).
        max_memory_gb: working memory (KV cache, activations, factors; not the weights) one batch may use,
            in GB (default: 80% of free GPU memory, or half the available RAM on CPU).
        restore: ``subtract`` the regenerated noise (upstream) or restore a ``copy`` (bitwise exact).
        prefix_cache: prefill shared prompt prefixes once (per member).
    """

    population: PopulationMode = "sequential"
    decoder: Decoder = "auto"
    members_per_batch: int | None = None
    max_memory_gb: float | None = None
    restore: RestoreMode = "subtract"
    prefix_cache: bool = True


def available_memory_bytes(device: torch.device) -> int:
    """Default working-memory budget: 80% of free GPU memory, or half the available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.8)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.5)
    except (ValueError, OSError):
        return 4 * 2**30


def member_memory_bytes(model, scheme: LowRankNoise, rows_per_member: int, tokens_per_row: int) -> int:
    """Estimated peak working memory of one member in a batch (bytes): its rows' KV cache, the prefill's
    activations and attention scores, the last-position logits, and its low-rank factors; ×1.5 margin."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    width = next(model.parameters()).element_size()
    kv = 2 * config.num_hidden_layers * kv_heads * head_dim * tokens_per_row * width
    intermediate = getattr(config, "intermediate_size", 4 * config.hidden_size)
    activations = tokens_per_row * (6 * config.hidden_size + 3 * intermediate) * width
    scores = heads * tokens_per_row * tokens_per_row * 4
    logits = config.vocab_size * 4
    factors = sum(scheme.rank * sum(scheme.selected[i].param.shape) * width for i in scheme.matrices)
    return int(1.5 * (rows_per_member * (kv + activations + scores + logits) + factors))


def plan_groups(members: Sequence[Member], per_batch: int) -> list[list[int]]:
    """Consecutive member indices in groups of ``per_batch`` (the last may be smaller)."""
    return [list(range(i, min(i + per_batch, len(members)))) for i in range(0, len(members), per_batch)]


def members_per_batch(model, scheme: NoiseScheme, engine: EngineSettings, num_questions: int,
                      settings: EvalSettings, population_size: int) -> int:
    """How many members share one batch: 1 when sequential, else ``members_per_batch`` or what fits the
    memory budget. Raises ``ConfigError`` when the budget is too small for one member."""
    if engine.population == "sequential":
        return 1
    if engine.members_per_batch is not None:
        return max(1, min(engine.members_per_batch, population_size))
    rows = num_questions * (2 if settings.meta_readout == "generate" else 1)
    need = member_memory_bytes(model, scheme, rows, settings.max_input_tokens + settings.max_new_tokens)
    device = next(model.parameters()).device
    budget = engine.max_memory_gb * 1e9 if engine.max_memory_gb is not None else available_memory_bytes(device)
    if budget < need:
        raise ConfigError(f"max_memory_gb: {budget / 1e9:.3g} GB is too small for one member ({num_questions} "
                          f"questions need about {need / 1e9:.3g} GB); raise max_memory_gb or lower "
                          f"num_data_per_iteration")
    return max(1, min(population_size, int(budget // need)))


def check_engine(engine: EngineSettings, scheme: NoiseScheme, settings: EvalSettings) -> None:
    """Raise ``ConfigError`` for engine settings that cannot work with this scheme / evaluation."""
    problems = []
    if engine.population == "batched":
        if not isinstance(scheme, LowRankNoise):
            problems.append(f"population: batched needs noise: lowrank (got {scheme.name}); full-rank noise is "
                            f"evaluated member by member (population: sequential)")
        elif scheme.perturb_non_matrix:
            problems.append("perturb_non_matrix: true gives every member full-rank noise, evaluated in place one "
                            "member at a time: use population: sequential")
    if engine.population == "batched" and settings.decoding == "model_default":
        problems.append("evaluation.decoding: model_default needs population: sequential (and decoder: hf or auto)")
    if engine.decoder == "compact" and settings.decoding == "model_default":
        problems.append("evaluation.decoding: model_default needs decoder: hf or auto")
    if engine.members_per_batch is not None and engine.members_per_batch < 1:
        problems.append(f"members_per_batch: {engine.members_per_batch} must be >= 1")
    if engine.max_memory_gb is not None and engine.max_memory_gb <= 0:
        problems.append(f"max_memory_gb: {engine.max_memory_gb} must be > 0")
    if problems:
        raise ConfigError("; ".join(problems))


def _evaluate_rows(model, tokenizer, records, settings: EvalSettings, num_members: int,
                   population: LowRankPopulation, prefix_cache: bool) -> list[list[SampleResult]]:
    """Evaluate ``num_members`` copies of ``records`` in one batch (rows member-major); ``population``
    perturbs each row by its member."""
    direct, meta = build_prompts(tokenizer, records, settings)
    direct_ids = encode_prompts(tokenizer, direct, settings.max_input_tokens)
    meta_ids = encode_prompts(tokenizer, meta, settings.max_input_tokens)
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


def evaluate_population(model, tokenizer, records, members: Sequence[Member], scheme: NoiseScheme, sigma: float,
                        settings: EvalSettings, engine: EngineSettings = EngineSettings(),
                        per_batch: int = 1) -> list[list[SampleResult]]:
    """Per-member evaluation results of ``members`` (in order) on ``records`` (see module docstring)."""
    results: list[list[SampleResult]] = []
    if engine.population == "batched":
        for group in plan_groups(members, per_batch):
            with LowRankPopulation(scheme, [members[i] for i in group], sigma) as population:
                results.extend(_evaluate_rows(model, tokenizer, records, settings, len(group), population,
                                              engine.prefix_cache))
        return results
    settings = replace(settings, decoder=engine.decoder)
    for member in members:
        with perturbed(scheme, member.seed, member.sign * sigma, engine.restore):
            results.append(evaluate_records(model, tokenizer, records, settings, prefix_cache=engine.prefix_cache))
    return results
