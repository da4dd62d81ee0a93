"""Chunking keeps groups whole; a dataset too large for the context is a clear error suggesting chunk_size."""

import pytest

from metalight.errors import ConfigError
from metalight.methods.icm.chunks import check_fits, make_chunks


def test_chunks_hold_whole_groups_in_a_seeded_order():
    groups = [f"g{i // 3}" for i in range(30)]
    chunks = make_chunks(groups, chunk_size=8, seed=4)
    assert sorted(i for c in chunks for i in c) == list(range(30))
    assert all(len(c) <= 8 for c in chunks)
    for chunk in chunks:
        for group in {groups[i] for i in chunk}:
            assert all(groups[i] != group for other in chunks if other is not chunk for i in other)
    assert make_chunks(groups, 8, 4) == chunks and make_chunks(groups, 8, 5) != chunks
    assert make_chunks(groups, None, 4) == [[i for c in chunks for i in c]]


def test_a_group_larger_than_chunk_size_is_an_error():
    with pytest.raises(ConfigError, match="has 3 claims, more than chunk_size 2"):
        make_chunks(["a", "a", "a"], 2, 0)


def test_too_long_without_chunk_size_suggests_one():
    with pytest.raises(
        ConfigError,
        match=r"do not fit in the model's context.*set model\.init_args\.chunk_size "
        r"\(upstream.s batch_size, e\.g\. 44\)",
    ):
        check_fits(needed=20_000, limit=8192, size=120, total=120, chunk_size=None)
    with pytest.raises(ConfigError, match="lower model.init_args.chunk_size from 256 to about"):
        check_fits(needed=20_000, limit=8192, size=256, total=1000, chunk_size=256)
    check_fits(needed=100, limit=8192, size=8, total=8, chunk_size=None)
