"""MetaConf's task graders: boxed maths, the step-checking judge and FActScore-style fact checking, the judges
served by a real local HTTP server."""

import logging

import pytest

from metalight.data.records import QARecord
from metalight.methods.metaconf.judge import HTTPChat
from metalight.methods.metaconf.task_graders import (
    BoxedAnswerGrader,
    FactScoreGrader,
    StepJudgeGrader,
    parse_facts,
    parse_final_score,
    parse_verdict,
)
from tests.api.conftest import ScriptedChatServer

MATH = QARecord(
    "m0",
    "What is 3/4 times 2?",
    ["\\frac{3}{2}"],
    meta={"task_type": "math", "solution": "2 \\times 3/4 = \\boxed{\\frac{3}{2}}"},
)
CURIE = QARecord(
    "l0",
    "In a paragraph, can you tell me about Marie Curie?",
    [],
    meta={"task_type": "long_fact", "title": "Marie Curie"},
)
FACTS = {
    "Marie Curie was a physicist.": "True",
    "Marie Curie was born in Warsaw.": "True",
    "Marie Curie won three Nobel Prizes.": "False",
}


@pytest.fixture
def server():
    s = ScriptedChatServer()
    yield s
    s.close()


def judge(server):
    return HTTPChat(
        base_url=server.base_url,
        model="judge",
        api_key_env=None,
        timeout_s=5.0,
        max_retries=1,
        backoff_s=0.01,
        max_concurrency=1,
    )


def fact_server_reply(body):
    """Split requests get the three facts; check requests the verdict of the fact they ask about."""
    content = body["messages"][-1]["content"]
    if content.startswith("Break the following text"):
        return "\n".join(f"- {fact}" for fact in FACTS)
    return next(verdict for fact, verdict in FACTS.items() if fact in content)


def test_boxed_grader_compares_the_last_box_with_sympy_or_strings():
    replies = [
        "Step 1: 2 * 3/4. Answer: \\boxed{1.5}",
        "Answer: \\boxed{\\dfrac{3}{2}}",
        "Answer: 2/3",
        "3/2",
    ]
    assert BoxedAnswerGrader().grade([MATH] * 4, replies) == [1.0, 1.0, 0.0, 1.0]
    # without SymPy, integer fractions still compare as exact rationals; anything else needs SymPy
    assert BoxedAnswerGrader(use_sympy=False).grade(
        [MATH] * 2, ["\\boxed{\\frac{6}{4}}", "\\boxed{\\sqrt{9}/2}"]
    ) == [1.0, 0.0]
    assert BoxedAnswerGrader().grade([MATH], ["\\boxed{\\frac{6}{4}}"]) == [1.0]


def test_final_score_parser_keeps_upstream_range():
    assert parse_final_score("Step 1 ✓\nStep 2 ✗\nFinal Score: 0.5") == 0.5
    assert parse_final_score("**Final Score:** 1") == 1.0
    assert parse_final_score("Final Score: 2") is None and parse_final_score("no score") is None


def test_step_judge_sends_problem_reference_and_reply(server):
    server.reply = lambda body: "Step 1: correct\nStep 2: wrong\nFinal Score: 0.5"
    assert StepJudgeGrader(judge(server)).grade([MATH], ["Step 1: 2*3/4\nStep 2: \\boxed{2/3}"]) == [0.5]
    prompt = server.requests[0]["messages"][-1]["content"]
    assert "What is 3/4 times 2?" in prompt and "\\boxed{\\frac{3}{2}}" in prompt and "\\boxed{2/3}" in prompt


def test_factscore_counts_supported_atomic_facts(server):
    server.reply = fact_server_reply
    reply = "Marie Curie was a Warsaw-born physicist who won three Nobel Prizes."
    assert FactScoreGrader(judge(server)).grade([CURIE], [reply]) == [pytest.approx(2 / 20)]
    assert FactScoreGrader(judge(server), denominator=None).grade([CURIE], [reply]) == [pytest.approx(2 / 3)]
    checks = [
        r["messages"][-1]["content"] for r in server.requests if "Topic:" in r["messages"][-1]["content"]
    ]
    assert len(checks) == 6 and all("Topic: Marie Curie" in c for c in checks)


def test_factscore_judge_error_is_missing_and_names_endpoint_and_status(server, caplog):
    server.reply = fact_server_reply
    server.script = ["ok", "500", "500"]  # the split succeeds; the first fact check fails twice (one retry)
    with caplog.at_level(logging.WARNING):
        assert FactScoreGrader(judge(server)).grade([CURIE], ["text"]) == [None]
    assert f"{server.base_url}/chat/completions answered HTTP 500" in caplog.text
    assert "FactScoreGrader: 1 of 3 judge requests failed" in caplog.text


def test_factscore_unusable_verdict_is_missing_not_false(server):
    server.reply = lambda body: (
        "- One fact." if body["messages"][-1]["content"].startswith("Break") else "It depends."
    )
    assert FactScoreGrader(judge(server)).grade([CURIE], ["text"]) == [None]


def test_fact_and_verdict_parsers():
    assert parse_facts("Facts:\n- A.\n2) B.\n* C.\nnot a fact") == ["A.", "B.", "C."]
    assert [parse_verdict(t) for t in ("True.", "**False**", "Not supported", "maybe", None)] == [
        True,
        False,
        False,
        None,
        None,
    ]


def test_facts_beyond_max_facts_are_reported_not_silently_dropped(server, caplog):
    server.reply = fact_server_reply
    with caplog.at_level(logging.WARNING):
        assert FactScoreGrader(judge(server), denominator=None, max_facts=2).grade([CURIE], ["t"]) == [1.0]
    assert "FactScoreGrader: 1 atomic facts beyond max_facts=2 per reply were not checked" in caplog.text
