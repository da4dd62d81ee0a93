"""The reflection judge over HTTP against a real local server (scores, field insertion, the key,
timeouts, 500), the score parser, and the local-model backend."""

import json
import logging

import pytest

from metalight.data.records import QARecord
from metalight.methods.metaconf.judge import (
    HTTPChat,
    JudgeItem,
    LocalChat,
    judge_reflections,
    parse_judge_score,
)
from metalight.methods.metaconf.rewards import MetaConfScorer
from tests.api.conftest import ScriptedChatServer

ITEM = JudgeItem("Who directed Avatar?", "James Cameron", "I remember the film's credits clearly.", 9.0, 1.0)
SCORES = json.dumps({"consistency": 2, "specificity": 1, "plausibility": 2, "total_score": 5 / 3})


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("METALIGHT_JUDGE_KEY", "sk-judge-secret")
    s = ScriptedChatServer()
    s.reply = lambda body: f"Here is my evaluation:\n{SCORES}"
    yield s
    s.close()


def backend(server, **overrides):
    settings = {"timeout_s": 5.0, "max_retries": 1, "backoff_s": 0.01, "api_key_env": "METALIGHT_JUDGE_KEY"}
    return HTTPChat(base_url=server.base_url, model="judge-model", **{**settings, **overrides})


def test_http_judge_inserts_the_fields_sends_the_key_and_scales_the_score(server, monkeypatch, caplog):
    monkeypatch.setenv("METALIGHT_JUDGE_KEY", "sk-judge-secret")
    judge = backend(server)
    with caplog.at_level(logging.DEBUG):
        assert judge_reflections(judge, [ITEM]) == [pytest.approx(5 / 6)]
    prompt = server.requests[0]["messages"][-1]["content"]
    for field in (
        "Who directed Avatar?",
        "James Cameron",
        "I remember the film's credits clearly.",
        "confidence (0-10): 9",
        "correctness of the answer (0-1): 1",
        '"total_score"',
    ):
        assert field in prompt
    assert server.requests[0]["model"] == "judge-model"
    assert server.headers[0]["Authorization"] == "Bearer sk-judge-secret"
    assert "sk-judge-secret" not in json.dumps(judge.describe()) + caplog.text
    assert judge.describe()["api_key_env"] == "METALIGHT_JUDGE_KEY"


def test_a_timeout_is_retried_then_counts_as_missing(server):
    server.script = ["slow"]
    assert judge_reflections(backend(server, timeout_s=0.3), [ITEM]) == [pytest.approx(5 / 6)]
    server.script = ["slow", "slow"]
    assert judge_reflections(backend(server, timeout_s=0.3), [ITEM]) == [None]


def test_server_errors_become_missing_scores_counted_by_the_reward(server):
    server.script = ["500"] * 4  # two items, each: one attempt + one retry
    scorer = MetaConfScorer(judge=backend(server, max_concurrency=1), missing_judge_score=0.0)
    good = "Answer: James Cameron\nSelf-reflection: I know this film.\nConfidence: 9"
    records = [QARecord("1", "Who directed Avatar?", ["James Cameron"])] * 3
    rewards = scorer.reflection([], [good, good, "no format at all"], records)
    assert rewards.tolist() == [0.0, 0.0, 0.0]
    assert (
        scorer.stats["judge/requests"] == 2 and scorer.stats["judge/missing"] == 2
    )  # the malformed one is not sent
    assert len(server.requests) == 4
    assert scorer.reflection([], [good], records[:1]).tolist() == [
        pytest.approx(5 / 6)
    ]  # the server recovered
    assert scorer.stats["judge/missing_rate"] == 0.0


@pytest.mark.parametrize(
    "reply,expected",
    [
        ('{"consistency": 2, "specificity": 2, "plausibility": 2, "total_score": 2}', 1.0),
        ('{"consistency": 1, "specificity": 0, "plausibility": 2}', 0.5),  # total from the three dimensions
        ('```json\n{"total_score": 0.5}\n```', 0.25),
        ("Total score: 1.5", 0.75),
        ('{"total score": 1.5}', 0.75),  # upstream's spelling, read by the bare-key fallback
        ('{"total_score": 7}', None),  # out of range
        ("I think the reflection is fine.", None),
        ("", None),
        (None, None),
    ],
)
def test_judge_score_parser(reply, expected):
    assert parse_judge_score(reply) == (pytest.approx(expected) if expected is not None else None)


def test_local_judge_runs_a_model_with_its_chat_template(tiny_model_dir):
    judge = LocalChat(model=str(tiny_model_dir), max_new_tokens=4, batch_size=2)
    replies = judge.complete_many([[{"role": "user", "content": "Score this."}]] * 3)
    assert len(replies) == 3 and all(isinstance(r, str) for r in replies)
    assert judge_reflections(judge, [ITEM]) == [
        None
    ]  # a random model's reply has no score: missing, no crash
