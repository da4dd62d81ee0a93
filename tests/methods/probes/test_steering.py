"""Steering hook: α = 0 changes nothing; α ≠ 0 moves the projection on the axis by exactly α."""

import torch

from metalight.methods.probes.extraction import capture_layers, run_to_capture
from metalight.methods.probes.steering_hook import steer


def test_alpha_zero_leaves_logits_unchanged_and_nonzero_moves_the_projection(tiny):
    model, tokenizer = tiny
    ids = torch.tensor([tokenizer("The sky is blue and the grass is green.")["input_ids"]])
    torch.manual_seed(0)
    direction = torch.nn.functional.normalize(torch.randn(model.config.hidden_size), dim=0)
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with steer(model, 0, direction, 0.0):
            zero = model(input_ids=ids).logits
        with steer(model, 0, direction, 3.5):
            moved = model(input_ids=ids).logits
        with capture_layers(model, [0], stop=False) as base:
            run_to_capture(model, input_ids=ids)
        with steer(model, 0, direction, 3.5), capture_layers(model, [0], stop=False) as steered:
            run_to_capture(model, input_ids=ids)
    assert torch.equal(plain, zero)
    assert not torch.allclose(plain, moved)
    shift = (steered[0] - base[0])[0] @ direction  # every position moves by alpha along the axis
    torch.testing.assert_close(shift, torch.full_like(shift, 3.5), atol=1e-4, rtol=0)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, plain)  # the hook is gone after the block
