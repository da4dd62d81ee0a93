"""Judgment asking: P(yes) is read at the first generated yes/no token from the logits generation used."""

import torch

from metalight.data.records import QARecord
from metalight.methods.judgment.asking import (
    JudgmentSettings,
    _StepLogits,
    ask_judgments,
    first_yes_no_probability,
    judgment_prompts,
    judgment_token_ids,
)
from metalight.models.generation import Decoding, encode_prompts, generate

RECORDS = [
    QARecord(str(i), q, ["x"])
    for i, q in enumerate(
        ["Who wrote Hamlet?", "What is the capital of France?", "Who painted the Mona Lisa in Florence?"]
    )
]


def test_first_yes_no_probability_uses_the_first_yes_or_no_step():
    yes, no = 7, 9
    steps = [torch.tensor([[0.0, 0.0], [2.0, 0.0]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]])]
    p = first_yes_no_probability([[3, yes], [no, yes], [3, 4]], steps, yes, no)
    assert p[0] == torch.sigmoid(torch.tensor(1.0)).item()  # step 1 of row 0
    assert p[1] == torch.sigmoid(torch.tensor(2.0)).item()  # step 0 of row 1 (the no token comes first)
    assert p[2] == 0.5  # neither token generated


def test_step_logits_match_teacher_forced_logits_under_the_prefix_cache(tiny):
    model, tok = tiny
    prompts = judgment_prompts(tok, RECORDS, "binary", JudgmentSettings())
    ids = judgment_token_ids(tok)
    hook = _StepLogits(ids, len(prompts))
    handle = model.get_output_embeddings().register_forward_hook(hook)
    try:
        out = generate(model, tok, prompts, Decoding(max_new_tokens=4))  # shared system prompt: prefix cached
    finally:
        handle.remove()
    assert len(hook.steps) >= 1 and hook.steps[0].shape == (3, 2)
    prompt_ids = encode_prompts(tok, prompts, 4096)
    for row in range(3):
        for step in range(min(len(out.completion_ids[row]), len(hook.steps))):
            seq = torch.tensor([prompt_ids[row] + out.completion_ids[row][:step]])
            with torch.no_grad():
                expected = model(input_ids=seq).logits[0, -1, list(ids)]
            torch.testing.assert_close(hook.steps[step][row], expected, atol=1e-4, rtol=1e-4)


def test_ask_judgments_returns_one_parsed_result_per_record(tiny):
    model, tok = tiny
    results = ask_judgments(model, tok, RECORDS, "binary", JudgmentSettings(max_new_tokens=3, batch_size=2))
    assert len(results) == 3
    for r in results:
        assert r.predicted in ("can", "cannot") and 0 <= r.p_yes <= 1
        assert r.parsed is False and r.predicted == "cannot"  # a random model writes no \boxed{...}
