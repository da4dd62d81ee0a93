"""Per-token log-probabilities and entropies of generated completions (tiny random Llama), checked against
a batched reference and that reference against a one-row manual computation."""

import math

import pytest
import torch

from metalight.models.chat import render_prompt
from metalight.models.generation import (
    Decoding,
    Prompt,
    completion_token_scores,
    encode_prompts,
    generate,
)
from metalight.models.padding import left_pad, position_ids

PROMPTS = [
    "Question: Who wrote Hamlet?\n",
    "Q: 2+2?\n",
    "Do you know the capital of a very long named country?\n",
]


def _prompts(tokenizer):
    return [Prompt(*render_prompt(tokenizer, text)) for text in PROMPTS]


def continuation_logprobs(model, tokenizer, prompts, continuations) -> torch.Tensor:
    """Reference: log-probability (nats) of each continuation given its prompt, by one left-padded forward."""
    prompt_ids = encode_prompts(tokenizer, prompts)
    cont_ids = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
    rows = [p + c for p, c in zip(prompt_ids, cont_ids)]
    input_ids, attention_mask = left_pad(rows, tokenizer.pad_token_id)
    with torch.no_grad():
        logits = (
            model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask)
            )
            .logits[:, :-1]
            .float()
        )
    token_logprobs = torch.log_softmax(logits, -1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
    return torch.stack([token_logprobs[row, -len(cont) :].sum() for row, cont in enumerate(cont_ids)])


def test_continuation_logprobs_equal_a_manual_computation(tiny):
    model, tokenizer = tiny
    prompt = Prompt("The answer is", templated=False)
    got = continuation_logprobs(model, tokenizer, [prompt, prompt], [" yes", " no maybe"])
    for value, cont in zip(got, [" yes", " no maybe"]):
        p_ids = tokenizer("The answer is")["input_ids"]
        c_ids = tokenizer(cont, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + c_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
        manual = sum(logp[len(p_ids) - 1 + i, t] for i, t in enumerate(c_ids))
        assert value.item() == pytest.approx(manual.item(), abs=1e-4)


def test_generation_reports_its_stop_token_and_generated_ids(tiny):
    model, tokenizer = tiny
    out = generate(model, tokenizer, _prompts(tokenizer), Decoding(max_new_tokens=5))
    assert len(out.stop_ids) == 3
    for row, stop in enumerate(out.stop_ids):
        if stop is None:
            assert out.num_tokens[row] == 5 and out.generated_ids(row) == out.completion_ids[row]
        else:
            assert out.generated_ids(row) == out.completion_ids[row] + [stop]


def test_token_scores_sum_to_the_continuation_log_probability(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    completions = [
        tokenizer(t, add_special_tokens=False)["input_ids"] for t in ("Shakespeare", " 4", " Paris is it")
    ]
    scores = completion_token_scores(model, tokenizer, prompts, completions, batch_size=2)
    expected = continuation_logprobs(model, tokenizer, prompts, ["Shakespeare", " 4", " Paris is it"])
    assert [len(lp) for lp in scores.logprobs] == [len(c) for c in completions]
    torch.testing.assert_close(torch.tensor([sum(lp) for lp in scores.logprobs]), expected, atol=1e-4, rtol=0)


def test_entropy_is_that_of_the_next_token_distribution(tiny):
    model, tokenizer = tiny
    prompt = _prompts(tokenizer)[:1]
    completion = tokenizer(" Bob", add_special_tokens=False)["input_ids"][:1]
    scores = completion_token_scores(model, tokenizer, prompt, [completion])
    ids = tokenizer(prompt[0].text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        log_p = torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)
    assert scores.entropies[0][0] == pytest.approx(-(log_p.exp() * log_p).sum().item(), abs=1e-4)
    assert scores.logprobs[0][0] == pytest.approx(log_p[completion[0]].item(), abs=1e-4)
    assert 0 <= scores.entropies[0][0] <= math.log(len(tokenizer)) + 1e-4


def test_greedy_tokens_score_as_the_most_likely_and_empty_completions_are_empty(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer)
    out = generate(model, tokenizer, prompts, Decoding(max_new_tokens=4))
    generated = [out.generated_ids(i) for i in range(3)]
    scores = completion_token_scores(model, tokenizer, prompts + prompts[:1], generated + [[]])
    assert scores.logprobs[3] == [] and scores.entropies[3] == []
    for row, chosen in enumerate(generated):
        prompt_ids = tokenizer(prompts[row].text, add_special_tokens=not prompts[row].templated)["input_ids"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prompt_ids + chosen])).logits[0].float()
        log_p = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], -1)
        torch.testing.assert_close(
            torch.tensor(scores.logprobs[row]), log_p.max(-1).values, atol=1e-4, rtol=0
        )
