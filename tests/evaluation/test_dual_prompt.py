"""Dual-prompt evaluation of a batch (tiny random Llama: checks plumbing, not quality)."""

import math

import pytest

from metalight.data.records import QARecord
from metalight.evaluation.dual_prompt import EvalSettings, build_prompts, evaluate_records, results_to_tensors
from metalight.prompts import meta_prompt

RECORDS = [
    QARecord("a", "Who directed Avatar?", ["James Cameron"]),
    QARecord("b", "What is the capital of France?", ["Paris"]),
    QARecord("c", "Which river flows through Vienna?", ["Danube"], context="Vienna lies on the Danube."),
]


def test_meta_prompt_is_raw_text_and_direct_prompt_is_chat_templated_by_default(tiny):
    _, tokenizer = tiny
    direct, meta = build_prompts(tokenizer, RECORDS, EvalSettings())
    assert direct[0].templated and "<|im_start|>assistant" in direct[0].text
    assert not meta[0].templated and meta[0].text == meta_prompt("Who directed Avatar?")
    assert meta[2].text.startswith("Context:\nVienna lies on the Danube.")


def test_meta_prompt_can_be_chat_templated(tiny):
    _, tokenizer = tiny
    _, meta = build_prompts(tokenizer, RECORDS, EvalSettings(meta_chat_template="auto"))
    assert meta[0].templated and "<|im_start|>user" in meta[0].text


@pytest.mark.parametrize("readout", ["generate", "logits"])
def test_every_record_gets_a_scored_sample(tiny, readout):
    model, tokenizer = tiny
    results = evaluate_records(
        model, tokenizer, RECORDS, EvalSettings(meta_readout=readout, max_new_tokens=4)
    )
    assert [r.id for r in results] == ["a", "b", "c"]
    for r in results:
        assert 0.0 <= r.p_yes <= 1.0 and not math.isnan(r.p_yes)
        assert isinstance(r.correct, bool) and isinstance(r.said_yes, bool)
        assert (r.meta_answer is None) == (readout == "logits")
    if readout == "logits":
        assert all(r.said_yes == (r.p_yes > 0.5) for r in results)
    tensors = results_to_tensors(results)
    assert tensors["correct"].shape == (3,) and tensors["confidence"].dtype.is_floating_point


def test_p_yes_agrees_between_readouts(tiny):
    model, tokenizer = tiny
    generated = evaluate_records(model, tokenizer, RECORDS, EvalSettings(max_new_tokens=3))
    logits = evaluate_records(
        model, tokenizer, RECORDS, EvalSettings(meta_readout="logits", max_new_tokens=3)
    )
    for g, lo in zip(generated, logits):
        assert g.p_yes == pytest.approx(lo.p_yes, abs=1e-5)
        assert g.direct_answer == lo.direct_answer


def test_settings_describe_records_prompt_version_and_template_use(tiny):
    _, tokenizer = tiny
    described = EvalSettings().describe(tokenizer)
    assert described["prompt_version"] and described["meta_chat_template_used"] is False
    assert described["direct_chat_template_used"] is True and described["grading"] == "esma"


@pytest.mark.parametrize("readout", ["generate", "logits"])
def test_compact_and_hf_decoders_score_the_same(tiny, readout):
    model, tokenizer = tiny
    runs = {
        decoder: evaluate_records(
            model, tokenizer, RECORDS, EvalSettings(meta_readout=readout, max_new_tokens=5, decoder=decoder)
        )
        for decoder in ("compact", "hf")
    }
    for c, h in zip(runs["compact"], runs["hf"]):
        assert (c.direct_answer, c.meta_answer, c.said_yes, c.correct) == (
            h.direct_answer,
            h.meta_answer,
            h.said_yes,
            h.correct,
        )
        assert c.direct_completion_ids == h.direct_completion_ids and c.direct_completion_ids
        assert c.p_yes == pytest.approx(h.p_yes, abs=1e-5)


def test_compact_decoder_with_the_models_own_decoding_is_a_config_error():
    from metalight.errors import ConfigError

    with pytest.raises(
        ConfigError, match="evaluation.decoder: compact .* evaluation.decoding is model_default"
    ):
        EvalSettings(decoder="compact", decoding="model_default").check()
    with pytest.raises(ConfigError, match="evaluation.max_input_tokens: 0 must be >= 1"):
        EvalSettings(max_input_tokens=0).check()
    assert EvalSettings(decoding="model_default").check().decoder == "auto"


def test_truncation_side_right_keeps_a_long_prompts_first_tokens_as_upstream_esma(tiny):
    """ESMA tokenises with truncation=True (Hugging Face's truncation_side "right": the first tokens stay)."""
    model, tokenizer = tiny
    record = QARecord("long", "Please consider this: " + "very " * 200 + "long question?", ["x"])
    left, right = (
        evaluate_records(
            model,
            tokenizer,
            [record],
            EvalSettings(max_new_tokens=2, max_input_tokens=32, truncation_side=side),
        )[0]
        for side in ("left", "right")
    )
    assert left.prompt_truncated and right.prompt_truncated
    full = tokenizer(build_prompts(tokenizer, [record], EvalSettings())[0][0].text, add_special_tokens=False)
    assert right.direct_prompt == tokenizer.decode(full["input_ids"][:32])
    assert left.direct_prompt == tokenizer.decode(full["input_ids"][-32:])
    assert (
        right.meta_prompt.startswith("Do you know the answer") and "long question?" not in right.meta_prompt
    )
    assert "long question?" in left.meta_prompt and "Do you know" not in left.meta_prompt
    assert EvalSettings(truncation_side="right").describe()["truncation_side"] == "right"
