"""Tokenising prompt-completion examples: the prompt is masked, the boundary is exact, truncation keeps the
completion."""

import pytest

from metalight.data.examples import SFTExample
from metalight.errors import ConfigError
from metalight.methods.sft.encoding import IGNORE_INDEX, collate, encode_example, render_example


def test_chat_example_masks_exactly_the_templated_prompt(tiny):
    _, tok = tiny
    example = SFTExample(prompt="Who wrote Hamlet?", completion="Shakespeare", system="Be brief.")
    encoded = encode_example(tok, example)
    prompt_text = tok.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Who wrote Hamlet?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    n_prompt = len(tok(prompt_text, add_special_tokens=False)["input_ids"])
    assert encoded.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    trained = tok.decode(encoded.labels[n_prompt:])
    assert trained == "Shakespeare<|im_end|>\n"  # the reply and its end-of-turn: the model learns to stop
    assert encoded.input_ids[n_prompt:] == encoded.labels[n_prompt:]


def test_raw_example_concatenates_and_appends_eos(tiny):
    _, tok = tiny
    example = SFTExample(prompt="Q: 2+2?\nA:", completion=" 4")
    prompt, completion, templated = render_example(tok, example, "never")
    assert (prompt, completion, templated) == ("Q: 2+2?\nA:", " 4", False)
    encoded = encode_example(tok, example, chat_template="never")
    assert encoded.input_ids[-1] == tok.eos_token_id
    n_prompt = len(tok("Q: 2+2?\nA:")["input_ids"])
    assert encoded.labels == [IGNORE_INDEX] * n_prompt + encoded.input_ids[n_prompt:]


def test_full_sequence_loss_option_labels_every_token(tiny):
    _, tok = tiny
    encoded = encode_example(tok, SFTExample(prompt="hello", completion="world"), completion_only=False)
    assert encoded.labels == encoded.input_ids


def test_truncation_drops_the_start_of_the_prompt_first(tiny):
    _, tok = tiny
    example = SFTExample(prompt="word " * 200 + "END", completion="done", system=None)
    encoded = encode_example(tok, example, max_length=20, chat_template="never")
    assert len(encoded.input_ids) == 20
    assert tok.decode(encoded.input_ids).rstrip().endswith("ENDdone<|im_end|>")


def test_message_prompt_without_template_is_a_clear_error(tiny):
    _, tok = tiny
    example = SFTExample(prompt=({"role": "user", "content": "hi"},), completion="x")
    with pytest.raises(ConfigError, match="chat-message prompt"):
        encode_example(tok, example, chat_template="never")


def test_collate_right_pads_without_loss_on_padding(tiny):
    _, tok = tiny
    short = encode_example(tok, SFTExample(prompt="a", completion="b"), chat_template="never")
    long = encode_example(tok, SFTExample(prompt="a b c d e", completion="f"), chat_template="never")
    batch = collate([short, long], tok.pad_token_id)
    n = len(short.input_ids)
    assert batch.input_ids.shape == (2, len(long.input_ids))
    assert batch.attention_mask[0, n:].sum() == 0 and (batch.labels[0, n:] == IGNORE_INDEX).all()
    assert batch.num_tokens == len(short.input_ids) + len(long.input_ids)
