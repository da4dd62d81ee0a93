"""Batched generation and first-token yes/no probability (tiny random Llama)."""

import pytest
import torch

from metalight.models.chat import render_prompt
from metalight.models.generation import (
    Decoding,
    Prompt,
    encode_prompts,
    generate,
    p_yes_from_logits,
    yes_no_token_ids,
    yes_probability,
)
from metalight.models.padding import left_pad

PROMPTS = [
    "Question: Who wrote Hamlet?\n",
    "Q: 2+2?\n",
    "Do you know the capital of a very long named country?\n",
]


def _prompts(tokenizer):
    return [Prompt(*render_prompt(tokenizer, text)) for text in PROMPTS]


def test_left_pad_aligns_sequences_to_the_right():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    ids, mask = left_pad([[5], [8, 9]], pad_id=0, width=3)  # a fixed width (shared-prefix batches)
    assert ids.tolist() == [[0, 0, 5], [0, 8, 9]] and mask.tolist() == [[0, 0, 1], [0, 1, 1]]


def test_yes_no_variants_are_single_tokens(tiny):
    _, tokenizer = tiny
    yes, no = yes_no_token_ids(tokenizer)
    assert tokenizer.convert_tokens_to_ids("Yes") in yes and tokenizer.convert_tokens_to_ids("No") in no
    assert all(len(tokenizer.decode([t]).strip()) <= 3 for t in yes + no)
    assert not set(yes) & set(no)


def test_p_yes_is_normalised_over_yes_and_no_variants():
    logits = torch.tensor([[0.0, 0.0, 0.0]])  # two yes variants, one no variant, equal logits
    assert p_yes_from_logits(logits, num_yes=2).item() == pytest.approx(2 / 3)


def test_yes_probability_does_not_depend_on_padding(tiny):
    model, tokenizer = tiny
    yes, no = yes_no_token_ids(tokenizer)
    prompts = _prompts(tokenizer)
    batched = yes_probability(model, tokenizer, prompts, yes, no)
    alone = torch.cat([yes_probability(model, tokenizer, [p], yes, no) for p in prompts])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_generation_first_step_logits_equal_a_forward_pass(tiny):
    model, tokenizer = tiny
    yes, no = yes_no_token_ids(tokenizer)
    prompts = _prompts(tokenizer)
    out = generate(model, tokenizer, prompts, Decoding(max_new_tokens=4), capture_token_ids=yes + no)
    torch.testing.assert_close(
        p_yes_from_logits(out.first_token_logits, len(yes)),
        yes_probability(model, tokenizer, prompts, yes, no),
        atol=1e-5,
        rtol=0,
    )
    assert len(out.texts) == 3 and all(n <= 4 for n in out.num_tokens)


def test_greedy_generation_matches_unbatched_and_respects_budget(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    batched = generate(model, tokenizer, prompts, Decoding(max_new_tokens=6))
    alone = [generate(model, tokenizer, [p], Decoding(max_new_tokens=6)).completion_ids[0] for p in prompts]
    assert batched.completion_ids == alone


def test_sampling_returns_several_sequences_per_prompt(tiny):
    model, tokenizer = tiny
    torch.manual_seed(0)
    out = generate(
        model,
        tokenizer,
        _prompts(tokenizer)[:2],
        Decoding(max_new_tokens=5, strategy="sample", temperature=1.0),
        num_return_sequences=3,
    )
    assert len(out.texts) == 6


def test_long_prompts_keep_their_end(tiny):
    _, tokenizer = tiny
    from metalight.models.generation import encode_prompts

    ids = encode_prompts(tokenizer, [Prompt("word " * 300 + "END")], max_input_tokens=16)[0]
    assert len(ids) == 16 and tokenizer.decode(ids).endswith("END")


def _mixed_prompts(tokenizer):
    """Two templates (chat-templated direct, raw meta) over eight questions: two prefix groups."""
    from metalight.prompts import direct_prompt, meta_prompt

    questions = [
        f"Who was person number {i} in the long list of {'very ' * i}famous people?" for i in range(8)
    ]
    return [Prompt(*render_prompt(tokenizer, direct_prompt(q))) for q in questions] + [
        Prompt(meta_prompt(q)) for q in questions
    ]


def test_prefix_cache_plans_one_group_per_template(tiny):
    model, tokenizer = tiny
    from metalight.models.generation import encode_prompts
    from metalight.models.prefix_cache import prepare_batch

    batch = prepare_batch(model, encode_prompts(tokenizer, _mixed_prompts(tokenizer)), tokenizer.pad_token_id)
    assert batch.cache is not None and batch.prefix_len > 20
    assert batch.cache.get_seq_length() == batch.prefix_len


def test_prefix_cache_gives_the_same_yes_probability(tiny):
    model, tokenizer = tiny
    yes, no = yes_no_token_ids(tokenizer)
    prompts = _mixed_prompts(tokenizer)
    cached = yes_probability(model, tokenizer, prompts, yes, no, prefix_cache=True)
    plain = yes_probability(model, tokenizer, prompts, yes, no, prefix_cache=False)
    torch.testing.assert_close(cached, plain, atol=1e-5, rtol=0)


def test_prefix_cache_gives_the_same_greedy_generations_and_first_logits(tiny):
    model, tokenizer = tiny
    yes, no = yes_no_token_ids(tokenizer)
    prompts = _mixed_prompts(tokenizer)
    cached = generate(model, tokenizer, prompts, Decoding(max_new_tokens=6), capture_token_ids=yes + no)
    plain = generate(
        model, tokenizer, prompts, Decoding(max_new_tokens=6), capture_token_ids=yes + no, prefix_cache=False
    )
    assert cached.completion_ids == plain.completion_ids
    torch.testing.assert_close(cached.first_token_logits, plain.first_token_logits, atol=1e-4, rtol=0)


def test_several_sequences_per_prompt_share_one_prefill(tiny):
    model, tokenizer = tiny
    prompts = _mixed_prompts(tokenizer)[:2]
    out = generate(model, tokenizer, prompts, Decoding(max_new_tokens=4), num_return_sequences=4)
    assert len(out.texts) == 8
    assert out.completion_ids[0] == out.completion_ids[3]  # greedy: the copies of one prompt agree


def test_stop_ids_name_the_token_that_ended_each_row(tiny):
    from tests.conftest import build_tiny_llama

    _, tokenizer = tiny
    model = build_tiny_llama(len(tokenizer))
    prompts = _prompts(tokenizer)
    free = generate(model, tokenizer, prompts, Decoding(max_new_tokens=6))
    assert free.stop_ids == [None] * 3 and free.num_tokens == [6] * 3
    stop = free.completion_ids[0][2]
    model.generation_config.eos_token_id = [stop]
    out = generate(model, tokenizer, prompts, Decoding(max_new_tokens=6))
    assert out.stop_ids[0] == stop and out.completion_ids[0] == free.completion_ids[0][: out.num_tokens[0]]
    assert stop not in out.completion_ids[0] and out.num_tokens[0] <= 2
    for ids, stop_id in zip(out.completion_ids, out.stop_ids):
        assert (stop_id is None) == (len(ids) == 6)


def test_compact_and_hf_decoders_give_the_same_generation(tiny):
    from tests.conftest import build_tiny_llama

    _, tokenizer = tiny
    model = build_tiny_llama(len(tokenizer), varied=True)  # answers differ between rows
    yes, no = yes_no_token_ids(tokenizer)
    prompts = _prompts(tokenizer) + _mixed_prompts(tokenizer)[::4]  # shared prefixes and different lengths
    free = generate(model, tokenizer, prompts, Decoding(max_new_tokens=6), decoder="hf")
    model.generation_config.eos_token_id = [free.completion_ids[0][2]]  # rows with this token end early
    outs = {
        decoder: generate(
            model,
            tokenizer,
            prompts,
            Decoding(max_new_tokens=6),
            num_return_sequences=2,
            capture_token_ids=yes + no,
            decoder=decoder,
        )
        for decoder in ("compact", "hf")
    }
    compact, hf = outs["compact"], outs["hf"]
    assert compact.completion_ids == hf.completion_ids and compact.stop_ids == hf.stop_ids
    assert compact.texts == hf.texts and compact.num_tokens == hf.num_tokens
    assert None in hf.stop_ids and set(hf.stop_ids) != {None}  # some rows stopped, some ran to the budget
    torch.testing.assert_close(compact.first_token_logits, hf.first_token_logits, atol=1e-5, rtol=0)


def test_the_decoder_is_chosen_from_the_decoding_and_sharding():
    from metalight.models.generation import resolve_decoder

    assert resolve_decoder("auto", "greedy") == "compact" and resolve_decoder("auto", "sample") == "compact"
    assert (
        resolve_decoder("auto", "model_default") == "hf" and resolve_decoder("auto", "greedy", True) == "hf"
    )
    assert resolve_decoder("hf", "greedy") == "hf"
    with pytest.raises(ValueError, match="model_default .* needs decoder: hf"):
        resolve_decoder("compact", "model_default")
    with pytest.raises(ValueError, match="lock step"):
        resolve_decoder("compact", "greedy", synced_gpus=True)
    with pytest.raises(ValueError, match="unknown decoder 'beam'"):
        resolve_decoder("beam", "greedy")


def test_encode_prompts_truncation_sides(tiny):

    _, tokenizer = tiny
    prompt = Prompt("one two three four five six seven eight")
    full = encode_prompts(tokenizer, [prompt])[0]
    assert encode_prompts(tokenizer, [prompt], 3)[0] == full[-3:]
    assert encode_prompts(tokenizer, [prompt], 3, "right")[0] == full[:3]
    assert encode_prompts(tokenizer, [prompt], 100, "right")[0] == full
