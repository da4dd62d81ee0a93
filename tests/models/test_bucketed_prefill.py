"""Prefill in length buckets: the plan minimises the cost, and logits, caches and greedy generations equal
the plain padded prefill (tiny random Llama, rows whose lengths differ a lot)."""

import itertools
import random

import pytest
import torch

from metalight.models import bucketed_prefill
from metalight.models.bucketed_prefill import packed_last_logits, plan_buckets, prefill
from metalight.models.chat import render_prompt
from metalight.models.generation import (
    Decoding,
    Prompt,
    encode_prompts,
    generate,
    yes_no_token_ids,
    yes_probability,
)
from metalight.models.prefix_cache import prepare_batch
from metalight.models.row_decoding import decode_rows, last_token_logits
from metalight.prompts import direct_prompt, meta_prompt


def _cost(buckets, lengths, call_cost):
    return sum(len(b) * max(lengths[r] for r in b) + call_cost for b in buckets)


def _best_cost(lengths, call_cost):
    """Brute force over every split of the sorted distinct lengths into contiguous ranges."""
    distinct = sorted({x for x in lengths if x > 0})
    best = float("inf")
    for cuts in itertools.product([False, True], repeat=max(len(distinct) - 1, 0)):
        groups, current = [], [distinct[0]]
        for length, cut in zip(distinct[1:], cuts):
            if cut:
                groups.append(current)
                current = []
            current.append(length)
        groups.append(current)
        cost = sum(sum(lengths.count(x) for x in g) * max(g) + call_cost for g in groups)
        best = min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("call_cost", [0, 5, 40])
def test_plan_is_optimal_and_covers_every_nonempty_row_once(seed, call_cost):
    rng = random.Random(seed)
    lengths = [rng.choice([0, 1, 3, 4, 9, 10, 17, 30]) for _ in range(rng.randint(1, 14))]
    if not any(lengths):
        lengths[0] = 2
    plan = plan_buckets(lengths, call_cost)
    rows = sorted(r for b in plan for r in b)
    assert rows == [r for r, x in enumerate(lengths) if x > 0]
    assert _cost(plan, lengths, call_cost) == _best_cost(lengths, call_cost)


def test_plan_keeps_one_bucket_when_calls_are_expensive():
    assert len(plan_buckets([3, 30, 7, 12], call_cost=10_000)) == 1
    assert len(plan_buckets([3, 30, 7, 12], call_cost=0)) == 4
    assert plan_buckets([0, 0], call_cost=0) == []


def _prompts(tokenizer):
    """Chat-templated direct and raw meta prompts over questions of 1 to 25 extra words."""
    questions = [f"Who is {'very ' * n}famous person {n}?" for n in (1, 25, 4, 12, 2, 18)]
    return [Prompt(*render_prompt(tokenizer, direct_prompt(q))) for q in questions] + [
        Prompt(meta_prompt(q)) for q in questions
    ]


@pytest.fixture
def many_buckets(monkeypatch):
    """Make extra forward calls free on CPU, so every distinct length gets its own bucket."""
    monkeypatch.setitem(bucketed_prefill.CALL_COST_TOKENS, "cpu", 0)


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_bucketed_logits_and_cache_equal_the_padded_prefill(tiny, many_buckets, prefix_cache):
    model, tokenizer = tiny
    rows = encode_prompts(tokenizer, _prompts(tokenizer))
    seen = []

    def context(index):
        seen.append(index.tolist())
        return torch.no_grad()

    batch = prepare_batch(model, rows, tokenizer.pad_token_id, enabled=prefix_cache)
    assert (batch.cache is not None) == prefix_cache
    logits, cache = prefill(model, batch, row_context=context)
    assert len(seen) > 3 and sorted(r for rows_ in seen for r in rows_) == list(range(len(rows)))
    plain_batch = prepare_batch(model, rows, tokenizer.pad_token_id, enabled=prefix_cache)
    plain_logits, plain_cache = prefill(model, plain_batch, buckets=False)
    torch.testing.assert_close(logits, plain_logits, atol=1e-5, rtol=0)
    mask = batch.attention_mask.bool()  # padded positions hold different junk in the two caches
    for layer, plain in zip(cache.layers, plain_cache.layers):
        torch.testing.assert_close(
            layer.keys.transpose(1, 2)[mask], plain.keys.transpose(1, 2)[mask], atol=1e-5, rtol=0
        )
        torch.testing.assert_close(
            layer.values.transpose(1, 2)[mask], plain.values.transpose(1, 2)[mask], atol=1e-5, rtol=0
        )


def test_bucketed_generation_equals_the_padded_one(tiny, many_buckets, monkeypatch):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    yes, no = yes_no_token_ids(tokenizer)
    rows = encode_prompts(tokenizer, prompts)
    bucketed = generate(model, tokenizer, prompts, Decoding(max_new_tokens=6), capture_token_ids=yes + no)
    with monkeypatch.context() as patch:
        patch.setitem(bucketed_prefill.CALL_COST_TOKENS, "cpu", 10**9)  # one bucket: the padded prefill
        plain = generate(model, tokenizer, prompts, Decoding(max_new_tokens=6), capture_token_ids=yes + no)
    assert bucketed.completion_ids == plain.completion_ids
    torch.testing.assert_close(bucketed.first_token_logits, plain.first_token_logits, atol=1e-4, rtol=0)
    compact = decode_rows(model, tokenizer, rows, Decoding(max_new_tokens=6), yes + no)
    assert compact.completion_ids == plain.completion_ids
    torch.testing.assert_close(compact.first_token_logits, plain.first_token_logits, atol=1e-4, rtol=0)


def test_bucketed_yes_probability_equals_the_padded_one(tiny, many_buckets):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    yes, no = yes_no_token_ids(tokenizer)
    bucketed = yes_probability(model, tokenizer, prompts, yes, no)
    plain = yes_probability(model, tokenizer, prompts, yes, no, synced_gpus=True)
    torch.testing.assert_close(bucketed, plain, atol=1e-5, rtol=0)
    rows = encode_prompts(tokenizer, prompts)
    torch.testing.assert_close(
        last_token_logits(model, tokenizer, rows, yes + no),
        last_token_logits(model, tokenizer, rows, yes + no, length_buckets=False),
        atol=1e-5,
        rtol=0,
    )


@pytest.mark.parametrize("prefix_cache", [True, False])
def test_packed_logits_equal_the_padded_prefill(tiny, prefix_cache):
    model, tokenizer = tiny
    rows = encode_prompts(tokenizer, _prompts(tokenizer))
    batch = prepare_batch(model, rows, tokenizer.pad_token_id, enabled=prefix_cache)
    if prefix_cache:  # two templates: two cached prefixes of different lengths
        assert batch.cache is not None and len(batch.group_kv[0][0]) == 2
    plain, _ = prefill(
        model, prepare_batch(model, rows, tokenizer.pad_token_id, enabled=prefix_cache), buckets=False
    )
    torch.testing.assert_close(packed_last_logits(model, batch), plain, atol=1e-5, rtol=0)


def test_large_batches_are_bucketed_not_packed(tiny, many_buckets, monkeypatch):
    """Packed attention grows with the square of the tokens: past the column cap the buckets are used."""
    model, tokenizer = tiny
    rows = encode_prompts(tokenizer, _prompts(tokenizer))
    batch = prepare_batch(model, rows, tokenizer.pad_token_id)
    calls = []
    monkeypatch.setattr(bucketed_prefill, "packed_last_logits", lambda *a: calls.append(a) or 1 / 0)
    monkeypatch.setattr(
        bucketed_prefill,
        "PACK_COLUMNS_PER_HIDDEN",
        bucketed_prefill.packed_columns(batch) / model.config.hidden_size - 1e-6,
    )
    logits, _ = prefill(model, batch, need_cache=False)
    assert not calls and logits.shape[0] == len(rows)
    monkeypatch.setattr(bucketed_prefill, "PACK_COLUMNS_PER_HIDDEN", 1e9)
    with pytest.raises(ZeroDivisionError):
        prefill(model, batch, need_cache=False)
