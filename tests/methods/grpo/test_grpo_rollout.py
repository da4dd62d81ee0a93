"""Rollouts: G samples per prompt with their stop tokens; shared-prefix log-probs equal plain per-row ones."""

import pytest
import torch

from metalight.methods.grpo.rollout import Rollout, completion_logprobs, sample_rollout
from metalight.models.chat import render_prompt
from metalight.models.generation import Decoding, Prompt
from metalight.models.prefix_cache import prepare_batch
from tests.conftest import build_tiny_llama

INSTRUCTION = (
    "Answer the following question with keywords. Think about what you know before answering and be "
    "brief.\nQuestion: "
)
QUESTIONS = ["What is the capital of France?", "Who wrote Hamlet?", "How many legs does a spider have?"]


@pytest.fixture
def setup(tiny):
    _, tokenizer = tiny
    model = build_tiny_llama(len(tokenizer))
    prompts = [Prompt(*render_prompt(tokenizer, INSTRUCTION + q)) for q in QUESTIONS]
    return model, tokenizer, prompts


def test_rollout_has_g_rows_per_prompt_and_keeps_stop_tokens(setup):
    model, tokenizer, prompts = setup
    free = sample_rollout(model, tokenizer, prompts, 2, Decoding(max_new_tokens=5), 256)
    assert len(free.completion_ids) == 6 and free.truncated.all() and free.lengths.tolist() == [5.0] * 6
    assert free.prompt_ids[0] == free.prompt_ids[1] != free.prompt_ids[2]
    assert free.prompts[0] == prompts[0].text and free.prompts[5] == prompts[2].text
    stop = free.completion_ids[2][1]
    model.generation_config.eos_token_id = [stop]
    rollout = sample_rollout(model, tokenizer, prompts, 2, Decoding(max_new_tokens=5), 256)
    assert not rollout.truncated[2] and rollout.completion_ids[2][-1] == stop  # the EOS is trained on, as TRL
    mask = rollout.mask()
    assert mask.shape == (6, int(rollout.lengths.max())) and mask.sum(1).tolist() == rollout.lengths.tolist()


def test_prompts_are_cut_to_max_prompt_length_from_the_left(setup):
    model, tokenizer, prompts = setup
    rollout = sample_rollout(
        model, tokenizer, prompts[:1], 2, Decoding(max_new_tokens=2), max_prompt_length=7
    )
    full = tokenizer(prompts[0].text, add_special_tokens=False)["input_ids"]
    assert rollout.prompt_ids[0] == full[-7:]


def test_shared_prefix_logprobs_and_gradients_equal_per_row_forwards(setup):
    model, tokenizer, prompts = setup
    rollout = sample_rollout(model, tokenizer, prompts, 3, Decoding(max_new_tokens=8, strategy="sample"), 256)
    completions = [ids[:k] for ids, k in zip(rollout.completion_ids, [8, 3, 1, 5, 8, 2, 7, 4, 6])]
    pad = tokenizer.pad_token_id
    assert prepare_batch(model, rollout.prompt_ids, pad).prefix_len > 20  # the shared prefix is really used

    def weighted_sum(share):
        model.zero_grad()
        logps, entropy = completion_logprobs(
            model, rollout.prompt_ids, completions, pad, 0.7, share_prefix=share
        )
        mask = (
            torch.arange(logps.shape[1])[None] < torch.tensor([len(c) for c in completions])[:, None]
        ).float()
        (logps * mask).sum().backward()
        return (
            logps.detach() * mask,
            entropy * mask,
            model.model.layers[0].self_attn.q_proj.weight.grad.clone(),
        )

    shared, entropy_shared, grad_shared = weighted_sum(True)
    plain, entropy_plain, grad_plain = weighted_sum(False)
    torch.testing.assert_close(shared, plain, atol=1e-5, rtol=0)
    torch.testing.assert_close(entropy_shared, entropy_plain, atol=1e-4, rtol=0)
    torch.testing.assert_close(grad_shared, grad_plain, atol=1e-5, rtol=1e-4)
    for row, (prompt, completion) in enumerate(zip(rollout.prompt_ids, completions)):
        with torch.no_grad():
            logits = model(torch.tensor([prompt + completion])).logits[0, len(prompt) - 1 : -1] / 0.7
        expected = torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)
        torch.testing.assert_close(shared[row, : len(completion)], expected, atol=1e-5, rtol=0)


def test_split_keeps_rows_in_order_and_cuts_logprobs_to_each_slice():
    rollout = Rollout(
        [[1], [2], [3], [4]],
        [[5, 6, 7], [8], [9], [10, 11]],
        list("abcd"),
        torch.tensor([True, False, False, True]),
        records=list("wxyz"),
        prompts=list("pqrs"),
        advantages=torch.arange(4.0),
        old_logps=torch.arange(12.0).view(4, 3),
        active_tokens=7.0,
    )
    first, second = rollout.split(2)
    assert (
        first.completion_ids == [[5, 6, 7], [8]]
        and second.texts == ["c", "d"]
        and second.records == ["y", "z"]
    )
    assert first.old_logps.shape == (2, 3) and second.old_logps.tolist() == [[6.0, 7.0], [9.0, 10.0]]
    assert second.advantages.tolist() == [2.0, 3.0] and second.truncated.tolist() == [False, True]
    assert first.ref_logps is None and first.active_tokens == second.active_tokens == 7.0
    with pytest.raises(ValueError, match="4 rows do not split into 3"):
        rollout.split(3)
