"""API-model evaluation against a real HTTP server on 127.0.0.1: normal, slow, 429, 500, malformed JSON,
failures (stop or skip), resume from the cache, and the key never leaving the request header."""

import json
from pathlib import Path

import pytest

from metalight.api.chat_client import ChatEndpoint
from metalight.cli import main
from metalight.data.records import QARecord, RecordBatch
from metalight.errors import ConfigError
from metalight.methods.evaluators.api import APIError, APIEvalModule
from tests.methods.evaluators.conftest import trivia_data_args
from tests.report_keys import assert_report_keys

SECRET = "sk-test-do-not-write-9f8e7d"


def _args(server, tmp_path, files, *extra, cache="cache.jsonl"):
    return [
        "validate",
        "--config",
        "configs/eval/api.yaml",
        "--model.init_args.endpoint.base_url",
        server.base_url,
        "--model.init_args.endpoint.model",
        "echo-1",
        "--model.init_args.endpoint.api_key_env",
        "METALIGHT_TEST_KEY",
        "--model.init_args.endpoint.backoff_s",
        "0.01",
        "--model.init_args.endpoint.max_backoff_s",
        "0.02",
        "--model.init_args.endpoint.timeout_s",
        "0.5",
        "--model.init_args.endpoint.max_concurrency",
        "4",
        "--model.init_args.cache_path",
        str(tmp_path / cache),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--trainer.enable_progress_bar",
        "false",
        "--report.plots",
        "false",
        *trivia_data_args(files, batch=3),
        *extra,
    ]


def _report(cli):
    return json.loads((Path(cli.trainer.log_dir) / "report.json").read_text())


def test_dual_prompt_and_text_sources_through_retries_of_every_kind(
    chat_server, tmp_path, trivia_files, monkeypatch
):
    monkeypatch.setenv("METALIGHT_TEST_KEY", SECRET)
    # One slow reply (longer than the 0.5 s timeout), one 429, one 500 and one malformed body: all retried.
    chat_server.script = ["slow", "429", "500", "malformed"]
    cli = main(_args(chat_server, tmp_path, trivia_files))
    report = _report(cli)
    questions = 6
    # direct + meta + IDK + verbalised per question, plus the four failed attempts.
    assert len(chat_server.requests) == 4 * questions + 4
    assert report["n"] == questions and report["api_failed"] == 0
    assert_report_keys(report, "api")
    assert report["model"] == "api:echo-1" and report["endpoint"]["api_key_env"] == "METALIGHT_TEST_KEY"
    assert report["confidence_sources"] == ["meta", "idk", "verbalized"]
    # The echo server repeats the prompt, whose "just return \"Yes\"" the ESMA rule reads as yes.
    assert report["yes_ratio"] == 1.0 and "max_new_tokens" not in report
    bodies = [
        b for b in chat_server.requests if b["messages"][0]["content"].startswith("Answer the following")
    ]
    assert bodies and all(b["model"] == "echo-1" and b["max_tokens"] == 32 for b in bodies)
    assert {h.get("Authorization") for h in chat_server.headers} == {f"Bearer {SECRET}"}
    run = Path(cli.trainer.log_dir)
    for path in [*run.rglob("*"), tmp_path / "cache.jsonl"]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_rerun_resumes_from_the_cache_without_new_requests(chat_server, tmp_path, trivia_files):
    first = _report(main(_args(chat_server, tmp_path, trivia_files)))
    sent = len(chat_server.requests)
    second = _report(main(_args(chat_server, tmp_path, trivia_files)))
    assert len(chat_server.requests) == sent
    for key in ("n", "accuracy", "yes_ratio", "verbalized/scored_rate", "idk/abstention_rate"):
        assert second[key] == first[key]


def test_a_failed_request_stops_the_run_and_the_rerun_pays_only_for_what_is_missing(
    chat_server, tmp_path, trivia_files
):
    chat_server.script = ["ok"] * 8 + ["400"]  # batch 1 (3 questions x 2 prompts) and part of its sources
    with pytest.raises(SystemExit) as stopped:
        main(_args(chat_server, tmp_path, trivia_files))
    assert stopped.value.code == 2
    cached = len((tmp_path / "cache.jsonl").read_text().splitlines())
    assert cached >= 8
    before = len(chat_server.requests)
    report = _report(main(_args(chat_server, tmp_path, trivia_files)))
    assert report["n"] == 6
    assert len(chat_server.requests) - before == 4 * 6 - cached


def test_failed_questions_can_be_skipped_and_counted(chat_server, tmp_path, trivia_files):
    chat_server.script = ["400"]  # the first request of the first batch: that question is left out
    report = _report(
        main(
            _args(
                chat_server,
                tmp_path,
                trivia_files,
                "--model.init_args.on_failure",
                "skip",
                "--model.init_args.sources",
                "[meta]",
            )
        )
    )
    assert report["n"] == 5 and report["api_failed"] == 1


def test_the_error_names_the_cause_and_the_way_to_resume(chat_server, tmp_path):
    chat_server.script = ["400"]
    module = APIEvalModule(
        ChatEndpoint(chat_server.base_url, "m", api_key_env=None, max_retries=0),
        cache_path=str(tmp_path / "c.jsonl"),
    )
    module.configure_model()
    with pytest.raises(APIError, match="HTTP 400.*re-run the same command to resume"):
        module.evaluate_batch(RecordBatch([QARecord("x", "Q?", ["A"])], [False]), "val")


def test_api_model_cannot_ask_for_logit_sources(chat_server):
    with pytest.raises(ConfigError, match=r"source\(s\) \['p_yes'\] need the model's logits"):
        APIEvalModule(ChatEndpoint(chat_server.base_url, "m"), sources=["meta", "p_yes"])
