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


def fitting_members(model, scheme: LowRankNoise, num_questions: int, settings: EvalSettings,
                    max_memory_gb: float | None, population_size: int) -> int:
    """The most members (≤ ``population_size``) whose working memory fits ``max_memory_gb`` (default: what
    is free); raises ``ConfigError`` when the budget is too small for one member."""
    rows = num_questions * (2 if settings.meta_readout == "generate" else 1)
    need = member_memory_bytes(model, scheme, rows, settings.max_input_tokens + settings.max_new_tokens)
    device = next(model.parameters()).device
    budget = max_memory_gb * 1e9 if max_memory_gb is not None else available_memory_bytes(device)
    if budget < need:
        raise ConfigError(f"engine.max_memory_gb: {budget / 1e9:.3g} GB is too small for one member "
                          f"({num_questions} questions need about {need / 1e9:.3g} GB); raise "
                          f"engine.max_memory_gb or lower num_data_per_iteration")
    return max(1, min(population_size, int(budget // need)))
