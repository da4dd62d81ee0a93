"""Confidence sources: parsing rules, and each score against an independent computation (tiny random
Llama)."""

import math

import pytest
import torch

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings, evaluate_records
from metalight.evaluation.sources import (
    SourceContext,
    check_idk_language,
    check_sources,
    compute_sources,
    is_abstention,
    local_responder,
    parse_probability,
    render_messages,
)
from metalight.models.chat import render_prompt
from metalight.models.generation import yes_no_token_ids
from metalight.prompts import VERBALIZED_FOLLOWUP, direct_prompt, p_true_prompt

RECORDS = [
    QARecord("a", "Who wrote Hamlet?", ["Shakespeare"]),
    QARecord("b", "What is 2+2?", ["4", "four"]),
    QARecord("c", "Capital of France?", ["Paris"]),
]
SETTINGS = EvalSettings(max_new_tokens=4)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("0.8", 0.8),
        ("Probability: 0.35", 0.35),
        ("I'd say 85%", 0.85),
        ("Probability: 90", 0.9),
        ("1", 1.0),
        (".5", 0.5),
        ("The probability that your answer is correct is 1", 1.0),
        ("Probability 0.7, maybe 0.9", 0.7),
        ("Answer: 1999. Probability: 0.6", 0.6),
        ("no idea", math.nan),
        ("Probability: 250", math.nan),
        ("", math.nan),
    ],
)
def test_verbalised_probability_parsing(reply, expected):
    assert parse_probability(reply) == pytest.approx(expected, nan_ok=True)


@pytest.mark.parametrize(
    ("reply", "abstains"),
    [
        ("I don't know", True),
        ("Sorry, I don’t know.", True),
        ("i don't know the answer", True),
        ("Paris", False),
        ("I do not know", False),
    ],
)
def test_idk_rule_is_esmas_substring(reply, abstains):
    assert is_abstention(reply) is abstains


def test_source_names_are_checked():
    with pytest.raises(ConfigError, match="unknown confidence source"):
        check_sources(["p_yes", "vibes"])
    with pytest.raises(ConfigError, match="need the model's logits"):
        check_sources(["meta", "p_true"], white_box=False)
    with pytest.raises(ConfigError, match="twice"):
        check_sources(["meta", "meta"])
    with pytest.raises(ConfigError, match="only in English"):
        check_idk_language("ko")


def test_conversations_render_with_the_template_or_as_raw_lines(tiny):
    _, tokenizer = tiny
    messages = [
        {"role": "user", "content": "Q?\n"},
        {"role": "assistant", "content": "A"},
        {"role": "user", "content": "Sure?"},
    ]
    templated = render_messages(tokenizer, messages, "auto")
    assert templated.templated and templated.text.count("<|im_start|>user") == 2
    assert templated.text.endswith("<|im_start|>assistant\n")
    raw = render_messages(tokenizer, messages, "never", system="Be brief.")
    assert raw.text == "Be brief.\n\nQ?\nA\nSure?\n" and not raw.templated
    assert render_messages(tokenizer, messages[:1], "never").text == "Q?\n"


def _context(tiny, respond=None):
    model, tokenizer = tiny
    results = evaluate_records(model, tokenizer, RECORDS, SETTINGS)
    return SourceContext(
        RECORDS, results, SETTINGS, respond or local_responder(model, tokenizer, SETTINGS), model, tokenizer
    )


def test_sequence_probability_and_entropy_equal_a_forward_pass_over_the_generated_tokens(tiny):
    model, tokenizer = tiny
    ctx = _context(tiny)
    scores = compute_sources(["max_seq_prob", "mean_token_entropy"], ctx)
    for row, (record, result) in enumerate(zip(RECORDS, ctx.results)):
        prompt = render_prompt(tokenizer, direct_prompt(record.question), "auto")[0]
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        chosen = result.direct_completion_ids
        assert 1 <= len(chosen) <= 5  # 4 new tokens, plus the stop token when one was emitted
        with torch.no_grad():
            logits = (
                model(input_ids=torch.tensor([prompt_ids + chosen]))
                .logits[0, len(prompt_ids) - 1 : -1]
                .float()
            )
        log_p = torch.log_softmax(logits, -1)
        logprob = log_p.gather(-1, torch.tensor(chosen)[:, None]).sum().item()
        entropy = -(log_p.exp() * log_p).sum(-1).mean().item()
        assert scores["max_seq_prob"].score[row] == pytest.approx(logprob, abs=1e-3)
        assert scores["mean_token_entropy"].score[row] == pytest.approx(-entropy, abs=1e-4)
        assert scores["max_seq_prob"].report is None


def test_p_true_is_the_true_share_of_the_next_token_after_the_p_true_prompt(tiny):
    model, tokenizer = tiny
    ctx = _context(tiny)
    scores = compute_sources(["p_true"], ctx)["p_true"]
    true_ids, false_ids = yes_no_token_ids(tokenizer, "True", "False")
    for row, (record, result) in enumerate(zip(RECORDS, ctx.results)):
        text = p_true_prompt(record.question, result.direct_answer)  # raw text: meta_chat_template "never"
        ids = tokenizer(text)["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
        expected = probs[true_ids].sum() / (probs[true_ids].sum() + probs[false_ids].sum())
        assert scores.score[row] == pytest.approx(expected.item(), abs=1e-5)
        assert scores.report[row] == (scores.score[row] > 0.5)


def test_text_sources_read_the_replies_they_are_given(tiny):
    sent = []

    def respond(conversations, max_new_tokens):
        sent.append((conversations, max_new_tokens))
        if len(conversations[0]) == 1:  # the IDK prompt
            return ["I don't know", "4", None]
        return ["Probability: 0.9", "about 20%", "sure"]

    ctx = _context(tiny, respond)
    scores = compute_sources(["meta", "idk", "verbalized"], ctx)
    assert scores["meta"].score == [float(r.said_yes) for r in ctx.results]
    idk = scores["idk"]
    assert idk.score[:2] == [0.0, 1.0] and math.isnan(idk.score[2]) and idk.report == [False, True, False]
    assert [e["idk_correct"] for e in idk.extras] == [False, True, None]
    assert scores["verbalized"].score[:2] == [0.9, 0.2] and math.isnan(scores["verbalized"].score[2])
    (idk_conv, idk_budget), (verb_conv, verb_budget) = sent
    assert idk_budget == SETTINGS.max_new_tokens and "I don't know" in idk_conv[0][0]["content"]
    assert verb_conv[1][1] == {"role": "assistant", "content": ctx.results[1].direct_answer}
    assert verb_conv[1][2]["content"] == VERBALIZED_FOLLOWUP and verb_budget == 10
