"""The completion loss equals a hand-computed cross-entropy over the completion tokens only."""

import torch

from metalight.data.examples import SFTExample
from metalight.methods.sft.encoding import encode_batch
from metalight.methods.sft.loss import completion_loss
from metalight.models.lora import LoraSettings, apply_lora


def hand_loss(model, tok, examples):
    """Mean -log p(completion token) over all completion tokens, from each example's full logits."""
    total, count = 0.0, 0
    for example in examples:
        prompt = tok.apply_chat_template(example.messages(), tokenize=False, add_generation_prompt=True)
        reply = {"role": "assistant", "content": example.completion}
        full = tok.apply_chat_template(example.messages() + [reply], tokenize=False)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
        c_ids = tok(full[len(prompt) :], add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p_ids + c_ids])
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
        for j, token in enumerate(c_ids):
            total -= float(logprobs[len(p_ids) + j - 1, token])
            count += 1
    return total / count


def test_loss_is_cross_entropy_of_completion_tokens_only(tiny):
    model, tok = tiny
    examples = [
        SFTExample(prompt="Who wrote Hamlet?", completion="William Shakespeare"),
        SFTExample(prompt="What is the capital of a country with a long name?", completion="Paris"),
    ]
    batch = encode_batch(tok, examples)
    with torch.no_grad():
        out = completion_loss(model, batch)
    assert abs(float(out.loss) - hand_loss(model, tok, examples)) < 1e-4
    assert out.num_labelled == int((batch.labels[:, 1:] != -100).sum())
    # Changing only the prompt of a masked position's *target* would not matter; changing the completion does.
    other = encode_batch(tok, [SFTExample(prompt=e.prompt, completion="No") for e in examples])
    with torch.no_grad():
        assert float(completion_loss(model, other).loss) != float(out.loss)


def test_loss_through_a_lora_wrapper_matches_the_plain_model_before_training(tiny_model_dir):
    from metalight.models.loading import load_model

    model, tok = load_model(str(tiny_model_dir))
    batch = encode_batch(tok, [SFTExample(prompt="hi", completion="there")])
    with torch.no_grad():
        plain = float(completion_loss(model, batch).loss)
        wrapped = apply_lora(model, LoraSettings(r=2, alpha=4, dropout=0.0)).eval()
        assert abs(float(completion_loss(wrapped, batch).loss) - plain) < 1e-6  # lora_B starts at zero
