"""Pooled residual-stream features: HF hidden_states semantics, left padding, spans, prefix caching."""

import pytest
import torch

from metalight.errors import ConfigError
from metalight.methods.probes.extraction import (
    chat_span_text,
    encode_with_span,
    extract_features,
    statement_span_text,
)

STATEMENTS = [
    "Paris is the capital of France.",
    "No.",
    "The giant anteater uses walking for locomotion, mostly.",
    "Water boils at 100 degrees Celsius at sea level.",
]


@pytest.fixture(scope="module")
def items(tiny):
    _, tokenizer = tiny
    system = "You are a helpful assistant."
    return [statement_span_text(tokenizer, "Say something.", s, system) for s in STATEMENTS]


def hidden_states_alone(model, tokenizer, item):
    ids, first, stop = encode_with_span(tokenizer, item)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True)
    return out.hidden_states, first, stop


def test_response_span_covers_exactly_the_statement_tokens(tiny, items):
    _, tokenizer = tiny
    for item, statement in zip(items, STATEMENTS):
        ids, first, stop = encode_with_span(tokenizer, item)
        assert tokenizer.decode(ids[first:stop]).strip() == statement
        assert item.text[item.start : item.end] == statement


@pytest.mark.parametrize("span", ["last", "response", "all", "response_to_end"])
def test_left_padded_batch_matches_unpadded_single_forward(tiny, items, span):
    model, tokenizer = tiny
    batched = extract_features(model, tokenizer, items, [0, 1], span, batch_size=4)  # rows of unequal length
    for row, item in enumerate(items):
        hidden, first, stop = hidden_states_alone(model, tokenizer, item)
        for layer in (0, 1):
            states = hidden[layer + 1][0]  # layer l = HF hidden_states[l + 1]; the last one is post-norm
            expected = {
                "last": states[-1],
                "all": states.mean(0),
                "response": states[first:stop].mean(0),
                "response_to_end": states[first:].mean(0),
            }[span]
            torch.testing.assert_close(batched[layer][row], expected, atol=1e-4, rtol=1e-4)


def test_prefix_cached_extraction_equals_plain(tiny):
    model, tokenizer = tiny
    history = [{"role": "system", "content": "You are a helpful assistant. " * 12}]
    for i in range(4):
        history += [
            {"role": "user", "content": f"Say something {i}."},
            {"role": "assistant", "content": f"Fact {i}."},
        ]
    items = [
        chat_span_text(
            tokenizer, history + [{"role": "user", "content": f"Imitate label {k}."}], reply, close_turn=False
        )
        for k in (0, 1)
        for reply in ("A short reply.", "Another, longer reply here.")
    ]
    plain = extract_features(model, tokenizer, items, [0, 1])
    cached = extract_features(model, tokenizer, items, [0, 1], prefix_cache=True)
    for layer in (0, 1):
        torch.testing.assert_close(cached[layer], plain[layer], atol=1e-4, rtol=1e-4)


def test_layer_out_of_range_names_the_valid_range(tiny, items):
    model, tokenizer = tiny
    with pytest.raises(
        ConfigError,
        match=r"layers \[2\] out of range: this model has 2 blocks, so layers "
        r"must be "
        r"in 0\.\.1",
    ):
        extract_features(model, tokenizer, items, [0, 2])
    with pytest.raises(ConfigError, match="span 'middle'"):
        extract_features(model, tokenizer, items, [0], "middle")
