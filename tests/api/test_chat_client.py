"""The OpenAI-compatible client against a real local HTTP server: normal, slow, 429, 500, malformed, cache."""

import logging

import pytest

from metalight.api import ChatClient, ChatEndpoint
from metalight.api.chat_client import AuthError
from metalight.errors import ConfigError

USER = [{"role": "user", "content": "hello"}]


def client(server, tmp_path=None, **overrides):
    endpoint = ChatEndpoint(
        base_url=server.base_url,
        model="judge",
        api_key_env="METALIGHT_TEST_KEY",
        **{"timeout_s": 5.0, "max_retries": 2, **overrides},
    )
    return ChatClient(
        endpoint, cache_path=tmp_path / "cache.jsonl" if tmp_path else None, sleep=lambda s: None
    )


def test_normal_request_sends_model_messages_and_bearer_key(chat_server, monkeypatch):
    monkeypatch.setenv("METALIGHT_TEST_KEY", "sk-secret-123")
    result = client(chat_server).complete(USER)
    assert result.ok and result.text == "echo: hello" and result.attempts == 1
    assert chat_server.requests[0]["model"] == "judge" and chat_server.requests[0]["messages"] == USER
    assert chat_server.headers[0]["Authorization"] == "Bearer sk-secret-123"


@pytest.mark.parametrize("failure", ["429", "500", "malformed"])
def test_transient_failures_are_retried(chat_server, failure):
    chat_server.script = [failure, failure]
    result = client(chat_server).complete(USER)
    assert result.ok and result.attempts == 3


def test_timeout_is_retried_then_succeeds(chat_server):
    chat_server.script = ["slow"]
    result = client(chat_server, timeout_s=0.3).complete(USER)
    assert result.ok and result.attempts == 2


def test_persistent_500_is_a_missing_result_without_the_key(chat_server, monkeypatch, caplog):
    monkeypatch.setenv("METALIGHT_TEST_KEY", "sk-secret-123")
    chat_server.script = ["500"] * 10
    with caplog.at_level(logging.WARNING):
        result = client(chat_server).complete(USER)
    assert not result.ok and result.text is None and result.attempts == 3 and "HTTP 500" in result.error
    assert "sk-secret-123" not in result.error and "sk-secret-123" not in caplog.text


def test_auth_errors_stop_at_once_saying_the_key_is_wrong(chat_server):
    chat_server.script = ["401"]
    with pytest.raises(
        AuthError, match="HTTP 401 .*the API key is missing or wrong; check the variable METALIGHT_TEST_KEY"
    ):
        client(chat_server).complete(USER)
    assert len(chat_server.requests) == 1


def test_many_requests_keep_their_order(chat_server):
    conversations = [[{"role": "user", "content": str(i)}] for i in range(20)]
    results = client(chat_server, max_concurrency=4).complete_many(conversations)
    assert [r.text for r in results] == [f"echo: {i}" for i in range(20)]


def test_cache_resumes_without_paying_again(chat_server, tmp_path):
    conversations = [[{"role": "user", "content": str(i)}] for i in range(5)]
    first = client(chat_server, tmp_path)
    first.complete_many(conversations[:3])  # "interrupted" after three answers
    second = client(chat_server, tmp_path)
    results = second.complete_many(conversations)
    assert second.requests_sent == 2 and [r.cached for r in results] == [True, True, True, False, False]
    assert [r.text for r in results] == [f"echo: {i}" for i in range(5)]
    assert "sk-" not in (tmp_path / "cache.jsonl").read_text()


def test_truncated_cache_line_is_skipped(chat_server, tmp_path):
    c = client(chat_server, tmp_path)
    c.complete(USER)
    with (tmp_path / "cache.jsonl").open("a") as handle:
        handle.write('{"key": "abc", "te')  # a write cut off by a crash
    assert client(chat_server, tmp_path).complete(USER).cached


def test_bad_endpoint_settings_are_config_errors():
    with pytest.raises(ConfigError, match="base_url"):
        ChatEndpoint(base_url="localhost:8000", model="m")
