"""API evaluation: reasoning-model request fields pass through, token usage per run reaches the report, and a
cost estimate when prices are given (against the real HTTP server on 127.0.0.1)."""

import hashlib
import json
from pathlib import Path

import pytest

from metalight.api.chat_client import ChatClient, ChatEndpoint
from metalight.cli import main
from tests.methods.evaluators.test_api import _args

USAGE = {"prompt_tokens": 10, "completion_tokens": 3, "completion_tokens_details": {"reasoning_tokens": 2}}


def test_request_body_sends_max_completion_tokens_instead_of_max_tokens_and_extra_fields():
    endpoint = ChatEndpoint(
        base_url="http://127.0.0.1:1/v1",
        model="o-mini",
        temperature=None,
        api_key_env=None,
        max_completion_tokens=256,
        reasoning_effort="low",
        extra_body={"seed": 7, "top_p": 0.5},
    )
    body = ChatClient(endpoint).request_body([{"role": "user", "content": "hi"}])
    assert body == {
        "model": "o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_completion_tokens": 256,
        "reasoning_effort": "low",
        "seed": 7,
        "top_p": 0.5,
    }


def test_default_requests_keep_their_cache_keys():
    endpoint = ChatEndpoint(base_url="http://127.0.0.1:1/v1", model="m", api_key_env=None)
    messages = [{"role": "user", "content": "q"}]
    old = hashlib.sha256(
        json.dumps(
            ["http://127.0.0.1:1/v1", "m", 0.0, 32, messages], sort_keys=True, ensure_ascii=False
        ).encode()
    ).hexdigest()
    assert ChatClient(endpoint).request_key(messages) == old
    effort = ChatEndpoint(
        base_url="http://127.0.0.1:1/v1", model="m", reasoning_effort="high", api_key_env=None
    )
    assert ChatClient(effort).request_key(messages) != old


def test_usage_and_cost_per_run_reach_the_report(chat_server, tmp_path, trivia_files):
    chat_server.usage = lambda body: USAGE
    extra = [
        "--model.init_args.endpoint.max_completion_tokens",
        "64",
        "--model.init_args.endpoint.reasoning_effort",
        "low",
        "--model.init_args.endpoint.extra_body",
        '{"seed": 7}',
        "--model.init_args.prices",
        '{"input_per_million": 2.0, "output_per_million": 8.0}',
    ]
    cli = main(_args(chat_server, tmp_path, trivia_files, *extra))
    report = json.loads((Path(cli.trainer.log_dir) / "report.json").read_text())
    requests = 4 * 6  # direct + meta + IDK + verbalised for 6 questions
    assert len(chat_server.requests) == requests
    assert all(
        b["max_completion_tokens"] == 64
        and "max_tokens" not in b
        and b["reasoning_effort"] == "low"
        and b["seed"] == 7
        for b in chat_server.requests
    )
    assert report["api_prompt_tokens"] == 10 * requests and report["api_completion_tokens"] == 3 * requests
    assert report["api_reasoning_tokens"] == 2 * requests
    assert report["api_cost_usd"] == pytest.approx((240 * 2.0 + 72 * 8.0) / 1e6)  # 0.001056 $
    assert report["prices"] == {"input_per_million": 2.0, "output_per_million": 8.0}
    rerun = main(_args(chat_server, tmp_path, trivia_files, *extra))  # every reply cached: nothing billed
    again = json.loads((Path(rerun.trainer.log_dir) / "report.json").read_text())
    assert again["api_prompt_tokens"] == 0 and again["api_cost_usd"] == 0.0
