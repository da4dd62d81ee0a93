"""The row-dropping decoder gives the same completions as ``model.generate`` (tiny random Llama)."""

import torch

from metalight.models.chat import render_prompt
from metalight.models.generation import Decoding, Prompt, encode_prompts, generate, yes_no_token_ids
from metalight.models.row_decoding import decode_rows, last_token_logits

QUESTIONS = [
    "Who wrote Hamlet?",
    "What is the capital of France?",
    "How many legs has a spider?",
    "Which planet is largest?",
    "Who painted the Mona Lisa?",
]


def _rows(tokenizer):
    prompts = [
        Prompt(*render_prompt(tokenizer, f"Answer the following question with keywords.\nQuestion: {q}\n"))
        for q in QUESTIONS
    ]
    prompts += [Prompt(f"Do you know the answer? Question: {q}\n") for q in QUESTIONS]
    return prompts, encode_prompts(tokenizer, prompts, 128)


def test_compacting_greedy_decoder_matches_generate(tiny):
    model, tokenizer = tiny
    prompts, rows = _rows(tokenizer)
    yes, no = yes_no_token_ids(tokenizer)
    reference = generate(model, tokenizer, prompts, Decoding(max_new_tokens=12), capture_token_ids=yes + no)
    for prefix_cache in (True, False):
        out = decode_rows(
            model, tokenizer, rows, Decoding(max_new_tokens=12), yes + no, prefix_cache=prefix_cache
        )
        assert out.completion_ids == reference.completion_ids
        torch.testing.assert_close(out.first_token_logits, reference.first_token_logits, atol=1e-4, rtol=0)


def test_rows_leave_the_batch_when_they_stop(tiny):
    model, tokenizer = tiny
    _, rows = _rows(tokenizer)
    eos = tokenizer.eos_token_id
    sizes = []

    def record(index):
        sizes.append(len(index))
        return torch.no_grad()

    # Rows 0 and 1 stop at once: EOS is made their greedy choice (while the batch still has every row).
    stopped = torch.tensor([0, 1])
    handle = model.get_output_embeddings().register_forward_hook(
        lambda m, i, o: (
            o.index_put_((stopped, torch.tensor([o.shape[1] - 1]), torch.tensor([eos])), torch.tensor(1e4))
            if o.shape[0] == len(rows)
            else o
        )
    )
    try:
        out = decode_rows(
            model,
            tokenizer,
            rows,
            Decoding(max_new_tokens=6),
            row_context=record,
            prefix_cache=False,
            length_buckets=False,
        )
    finally:
        handle.remove()
    assert out.completion_ids[:2] == [[], []] and min(out.num_tokens[2:]) > 0
    assert sizes[0] == len(rows) and sizes[-1] == len(rows) - 2  # rows 0 and 1 left after their stop token


def test_last_token_logits_match_a_plain_forward(tiny):
    model, tokenizer = tiny
    _, rows = _rows(tokenizer)
    yes, no = yes_no_token_ids(tokenizer)
    got = last_token_logits(model, tokenizer, rows, yes + no)
    for i, row in enumerate(rows):
        with torch.no_grad():
            want = model(torch.tensor([row])).logits[0, -1, yes + no]
        torch.testing.assert_close(got[i], want, atol=1e-4, rtol=0)
