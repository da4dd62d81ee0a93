"""Splitting a dataset into chunks ICM labels independently, and checking that a chunk fits the context."""

from __future__ import annotations

import random
from collections.abc import Sequence

from metalight.errors import ConfigError


def make_chunks(groups: Sequence[str], chunk_size: int | None, seed: int) -> list[list[int]]:
    """Claim indices per chunk: whole consistency groups, in a seeded random order, at most ``chunk_size``
    claims each (upstream samples ``batch_size / GROUP_SIZE`` groups at random); ``None``: one chunk."""
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    order = list(members)
    random.Random(seed).shuffle(order)
    if chunk_size is None:
        return [[i for g in order for i in members[g]]] if order else []
    if chunk_size < 1:
        raise ConfigError(f"chunk_size must be >= 1 claims, got {chunk_size}")
    too_big = [g for g in order if len(members[g]) > chunk_size]
    if too_big:
        raise ConfigError(
            f"consistency group {too_big[0]!r} has {len(members[too_big[0]])} claims, more than "
            f"chunk_size {chunk_size}; raise model.init_args.chunk_size (groups are never split)"
        )
    chunks: list[list[int]] = [[]]
    for group in order:
        if len(chunks[-1]) + len(members[group]) > chunk_size:
            chunks.append([])
        chunks[-1].extend(members[group])
    return chunks


def context_limit(model, tokenizer) -> int | None:
    """Longest input the model takes (tokens): its position embeddings, or the tokenizer's limit."""
    limits = [
        getattr(model.config, "max_position_embeddings", None),
        getattr(tokenizer, "model_max_length", None),
    ]
    limits = [int(x) for x in limits if isinstance(x, int) and 0 < x < 10**7]
    return min(limits) if limits else None


def check_fits(needed: int, limit: int | None, size: int, total: int, chunk_size: int | None) -> None:
    """Raise ``ConfigError`` when the longest prompt of a chunk of ``size`` claims (``needed`` tokens) exceeds
    the model's ``limit``, suggesting a ``chunk_size`` (upstream's ``batch_size``) that fits."""
    if limit is None or needed <= limit:
        return
    suggestion = max(2, int(size * limit / needed * 0.9))
    if chunk_size is None:
        raise ConfigError(
            f"the {total} claims do not fit in the model's context: one ICM prompt would hold all but "
            f"one of them ({needed} tokens) and the model takes {limit}; set model.init_args.chunk_size "
            f"(upstream's batch_size, e.g. {suggestion}) to label the data in independent chunks"
        )
    raise ConfigError(
        f"a chunk of {size} claims needs prompts of {needed} tokens but the model takes {limit}; "
        f"lower model.init_args.chunk_size from {chunk_size} to about {suggestion}"
    )
