"""Memory planning of the batched engine: how many ``lowrank`` members fit one batch."""

from __future__ import annotations

import os

import torch

from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings
from metalight.methods.esma.noise import LowRankNoise


def available_memory_bytes(device: torch.device) -> int:
    """Default working-memory budget: 80% of free GPU memory, or half the available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free * 0.8)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.5)
    except (ValueError, OSError):
        return 4 * 2**30


def _dims(model) -> tuple:
    """(text config, attention heads, KV bytes per token and layer, activation bytes per token in a layer)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    width = next(model.parameters()).element_size()
    intermediate = getattr(config, "intermediate_size", 4 * config.hidden_size)
    return config, heads, 2 * kv_heads * head_dim * width, (6 * config.hidden_size + 3 * intermediate) * width


def member_memory_bytes(
    model,
    scheme: LowRankNoise,
    rows_per_member: int,
    tokens_per_row: int,
    shared_layers: int = 0,
    new_tokens: int = 0,
) -> int:
    """Estimated peak working memory of one member in a batch (bytes): its rows' KV cache, the prefill's
    activations and attention scores, the last-position logits, and its low-rank factors; ×1.5 margin.

    ``shared_layers`` > 0 (a shared trunk of that many layers): a row keeps the KV of the layers above the
    trunk, the trunk's KV of its ``new_tokens`` generated tokens only (its prompt's is shared,
    :func:`shared_trunk_bytes`)."""
    config, heads, kv_token_layer, activation_token = _dims(model)
    if shared_layers:
        kv = kv_token_layer * (
            (config.num_hidden_layers - shared_layers) * tokens_per_row + shared_layers * new_tokens
        )
    else:
        kv = kv_token_layer * config.num_hidden_layers * tokens_per_row
    activations = tokens_per_row * activation_token
    scores = heads * tokens_per_row * tokens_per_row * 4
    logits = config.vocab_size * 4
    width = next(model.parameters()).element_size()
    factors = sum(scheme.rank * sum(scheme.selected[i].param.shape) * width for i in scheme.matrices)
    return int(1.5 * (rows_per_member * (kv + activations + scores + logits) + factors))


def shared_trunk_bytes(model, prompts: int, tokens_per_prompt: int, shared_layers: int) -> int:
    """Estimated memory of a shared trunk's prompt states (bytes), held once for all members: the trunk's
    KV cache and the hidden states entering the next layer for ``prompts`` prompts, plus the trunk prefill's
    activations and scores; ×1.5 margin."""
    config, heads, kv_token_layer, activation_token = _dims(model)
    width = next(model.parameters()).element_size()
    per_prompt = tokens_per_prompt * (
        kv_token_layer * shared_layers + config.hidden_size * width + activation_token
    )
    return int(1.5 * prompts * (per_prompt + heads * tokens_per_prompt * tokens_per_prompt * 4))


def fitting_members(
    model,
    scheme: LowRankNoise,
    num_questions: int,
    settings: EvalSettings,
    max_memory_gb: float | None,
    population_size: int,
    shared_layers: int = 0,
) -> int:
    """The most members (≤ ``population_size``) whose working memory fits ``max_memory_gb`` (default: what
    is free), with a shared trunk of ``shared_layers`` layers counted once; raises ``ConfigError`` when the
    budget is too small for one member."""
    tokens = settings.max_input_tokens + settings.max_new_tokens
    if shared_layers:  # every member's rows go through the top for both prompts; the trunk is held once
        rows = 2 * num_questions
        need = member_memory_bytes(model, scheme, rows, tokens, shared_layers, settings.max_new_tokens)
        shared = shared_trunk_bytes(model, 2 * num_questions, settings.max_input_tokens, shared_layers)
    else:
        rows = num_questions * (2 if settings.meta_readout == "generate" else 1)
        need, shared = member_memory_bytes(model, scheme, rows, tokens), 0
    device = next(model.parameters()).device
    budget = max_memory_gb * 1e9 if max_memory_gb is not None else available_memory_bytes(device)
    if budget < shared + need:
        raise ConfigError(
            f"engine.max_memory_gb: {budget / 1e9:.3g} GB is too small for one member "
            f"({num_questions} questions need about {(shared + need) / 1e9:.3g} GB); raise "
            f"engine.max_memory_gb or lower num_data_per_iteration"
        )
    return max(1, min(population_size, int((budget - shared) // need)))
