"""A model run as a shared trunk + per-row top gives the row decoder's answers, with the trunk run once per
prompt (and per distinct generated history), not once per row, and the full output layer once per history
(tiny random Llama, 4 layers)."""

from contextlib import contextmanager

import pytest
import torch

from metalight.models.decoding import Decoding, stop_token_ids
from metalight.models.generation import yes_no_token_ids
from metalight.models.layer_split import LayerSplit, split_unsupported
from metalight.models.row_decoding import decode_rows
from metalight.models.shared_prompts import top_prefill, trunk_states
from metalight.models.split_decoding import decode_split
from tests.conftest import build_tiny_llama
from tests.models.test_row_decoding import _rows

COPIES = 3


def _copy_noise(model, strength: float):
    """A row context that adds a per-copy offset to the last layer's MLP output (rows are copy-major), like
    a population member perturbing the top layers; returns (row_context(rows_per_copy), hook handle)."""
    torch.manual_seed(1)
    offsets = torch.randn(COPIES, model.config.hidden_size) * strength
    current: dict = {}

    def hook(module, inputs, output):
        return output + offsets[current["copies"]].view(
            len(current["copies"]), *([1] * (output.dim() - 2)), -1
        )

    def context_for(rows_per_copy: int):
        @contextmanager
        def rows(index):
            current["copies"] = index // rows_per_copy
            yield

        return rows

    return context_for, model.model.layers[3].mlp.register_forward_hook(hook)


@pytest.mark.parametrize("share_prefixes", [True, False])
def test_shared_trunk_decoding_equals_the_row_decoder(tiny, share_prefixes):
    _, tokenizer = tiny
    model = build_tiny_llama(len(tokenizer), layers=4, varied=True)
    model.generation_config.eos_token_id = [
        2,
        18650,
    ]  # a token some copies choose: rows stop at different steps
    _, prompts = _rows(tokenizer)
    rows = [p for _ in range(COPIES) for p in prompts]
    yes, no = yes_no_token_ids(tokenizer)
    context_for, handle = _copy_noise(model, 0.003)  # copies agree on the first tokens, then some diverge
    trunk_rows, output_rows = [], []
    try:
        reference = decode_rows(
            model,
            tokenizer,
            rows,
            Decoding(max_new_tokens=10),
            yes + no,
            row_context=context_for(len(prompts)),
            prefix_cache=share_prefixes,
        )
        split = LayerSplit(model, 2)
        states = trunk_states(split, prompts, tokenizer.pad_token_id, share_prefixes)
        top = top_prefill(split, states, COPIES, context_for(len(prompts)), range(len(prompts)), yes + no)
        hooks = [
            split.base.layers[0].register_forward_hook(lambda m, i, o: trunk_rows.append(len(i[0]))),
            model.lm_head.register_forward_hook(lambda m, i, o: output_rows.append(len(i[0]))),
        ]
        out = decode_split(
            split,
            tokenizer,
            states,
            top,
            Decoding(max_new_tokens=10),
            stop_token_ids(model, tokenizer),
            context_for(len(prompts)),
        )
        for hook in hooks:
            hook.remove()
    finally:
        handle.remove()
    assert out.completion_ids == reference.completion_ids and out.stop_ids == reference.stop_ids
    torch.testing.assert_close(top.captured, reference.first_token_logits, atol=1e-4, rtol=0)
    assert {None, 18650} <= set(out.stop_ids)  # some rows stop early, others run to the budget
    # The trunk decodes one row per history: fewer than the rows, and more once copies have diverged.
    assert trunk_rows[0] < len(rows) and max(trunk_rows) > trunk_rows[0]
    # The full output layer ran for each history's representative; at some steps the candidate tokens were
    # too many and every row got its full logits, at others only the candidates were scored.
    assert len(trunk_rows) + 1 < len(output_rows) < 2 * (len(trunk_rows) + 1)


def test_an_unperturbed_population_runs_the_trunk_once_per_prompt(tiny):
    _, tokenizer = tiny
    model = build_tiny_llama(len(tokenizer), layers=4, varied=True)
    _, prompts = _rows(tokenizer)
    split = LayerSplit(model, 2)
    states = trunk_states(split, prompts, tokenizer.pad_token_id)
    top = top_prefill(split, states, COPIES, None, range(len(prompts)), None)
    trunk_rows, top_rows, output_rows = [], [], []
    hooks = [
        split.base.layers[0].register_forward_hook(lambda m, i, o: trunk_rows.append(len(i[0]))),
        split.base.layers[2].register_forward_hook(lambda m, i, o: top_rows.append(len(i[0]))),
        model.lm_head.register_forward_hook(lambda m, i, o: output_rows.append(len(i[0]))),
    ]
    try:
        out = decode_split(
            split, tokenizer, states, top, Decoding(max_new_tokens=6), stop_token_ids(model, tokenizer)
        )
    finally:
        for hook in hooks:
            hook.remove()
    assert all(
        out.completion_ids[k] == out.completion_ids[c * len(prompts) + k]
        for c in range(COPIES)
        for k in range(len(prompts))
    )
    assert trunk_rows and max(trunk_rows) <= len(prompts) and top_rows[0] == COPIES * len(prompts)
    assert max(output_rows) <= len(prompts)  # identical copies: full logits for one row per history only


def test_models_that_cannot_be_split_are_named(tiny):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100))
    assert "model type 'gpt2'" in split_unsupported(gpt2)
    with pytest.raises(ValueError, match="cannot split GPT2LMHeadModel into trunk and top"):
        LayerSplit(gpt2, 1)
    model, _ = tiny
    assert split_unsupported(model) is None
    with pytest.raises(ValueError, match=r"trunk end 3 must be in \[1, 2\]"):
        LayerSplit(model, 3)


def test_a_qwen2_model_splits_too(tiny):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    _, tokenizer = tiny
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            tie_word_embeddings=False,
            eos_token_id=2,
            pad_token_id=0,
        )
    ).eval()
    _, prompts = _rows(tokenizer)
    reference = decode_rows(model, tokenizer, prompts, Decoding(max_new_tokens=6))
    split = LayerSplit(model, 1)
    states = trunk_states(split, prompts, tokenizer.pad_token_id)
    out = decode_split(
        split,
        tokenizer,
        states,
        top_prefill(split, states, 1, None, range(len(prompts)), None),
        Decoding(max_new_tokens=6),
        stop_token_ids(model, tokenizer),
    )
    assert out.completion_ids == reference.completion_ids
