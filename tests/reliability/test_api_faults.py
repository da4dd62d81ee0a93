"""The API client: bounded waits (Retry-After capped), SIGTERM honoured while waiting with the cache kept,
a key-like api_key_env refused and never written, an unset variable refused, 401 named as a key problem."""

import signal
import time

import pytest

from metalight.api.chat_client import AuthError, ChatClient, ChatEndpoint
from tests.reliability.conftest import ROOT, run_cli, run_main

USER = [{"role": "user", "content": "hello"}]
FAKE_KEY = "sk-proj-Ab12Cd34Ef56Gh78Ij90KlMn"


def test_retry_after_3600_is_capped_by_max_backoff(chat_server):
    chat_server.script = ["429-3600", "429-3600"]
    endpoint = ChatEndpoint(chat_server.base_url, "m", api_key_env=None, max_retries=2, max_backoff_s=0.2)
    started = time.monotonic()
    result = ChatClient(endpoint).complete(USER)
    assert result.ok and result.attempts == 3
    assert time.monotonic() - started < 3.0  # two waits of at most 0.2 s, not 3600 s


def _api_args(server, tmp_path, *extra):
    return ["validate", "--config", "configs/eval/api.yaml", "--model.init_args.endpoint.base_url", server.base_url,
            "--model.init_args.endpoint.model", "m", "--model.init_args.endpoint.api_key_env", "METALIGHT_TEST_KEY",
            "--model.init_args.cache_path", str(tmp_path / "cache.jsonl"), "--model.init_args.sources", "[meta]",
            "--trainer.default_root_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false",
            "--report.plots", "false", "--data", "metalight.data.sources.triviaqa.TriviaQADataModule",
            "--data.init_args.path", str(ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl"), *extra]


def test_sigterm_while_waiting_stops_at_once_and_keeps_the_cache(chat_server, tmp_path):
    # Two replies succeed and are cached; then every request gets 429 with Retry-After: 3600 and a 60 s cap.
    chat_server.script, chat_server.default = ["ok", "ok"], "429-3600"
    run = run_cli(*_api_args(chat_server, tmp_path, "--model.init_args.endpoint.max_backoff_s", "60",
                             "--model.init_args.endpoint.max_concurrency", "1"))
    deadline = time.monotonic() + 300
    while len(chat_server.requests) < 3 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)  # the client is now in its 60 s wait
    run.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    _, err = run.communicate(timeout=60)
    assert time.monotonic() - sent < 15
    assert run.returncode == 143
    assert err.strip().splitlines()[-1] == (f"error: stopped by SIGTERM while waiting for API replies; replies "
                                            f"received so far are cached in {tmp_path / 'cache.jsonl'}: re-run the "
                                            f"same command to resume")
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 2


def test_a_key_given_as_api_key_env_is_refused_and_written_nowhere(chat_server, tmp_path, capsys):
    code, errors = run_main(_api_args(chat_server, tmp_path, "--model.init_args.endpoint.api_key_env", FAKE_KEY),
                            capsys)
    assert code == 2 and len(errors) == 1 and FAKE_KEY not in errors[0]
    assert "api_key_env must be the NAME of an environment variable holding the key" in errors[0]
    for path in tmp_path.rglob("*"):
        assert not path.is_file() or FAKE_KEY.encode() not in path.read_bytes(), path


def test_an_unset_key_variable_is_refused(chat_server, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("METALIGHT_TEST_KEY")
    code, errors = run_main(_api_args(chat_server, tmp_path), capsys)
    assert code == 2 and errors == [("error: the API key variable METALIGHT_TEST_KEY (endpoint.api_key_env) is not "
                                    "set: export METALIGHT_TEST_KEY=<your key>, or set api_key_env: null for an "
                                    "endpoint that needs no key")]
    assert chat_server.requests == []


@pytest.mark.parametrize("status", ["401", "403"])
def test_a_rejected_key_says_so_not_resume(status, chat_server, tmp_path, capsys):
    chat_server.script = [status]
    code, errors = run_main(_api_args(chat_server, tmp_path, "--model.init_args.endpoint.max_concurrency", "1"),
                            capsys)
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith(f"error: HTTP {status} from {chat_server.base_url}/chat/completions: the API key is "
                                f"missing or wrong; check the variable METALIGHT_TEST_KEY")
    assert "resume" not in errors[0]
    with pytest.raises(AuthError):
        chat_server.script = [status] * 3
        ChatClient(ChatEndpoint(chat_server.base_url, "m", api_key_env=None)).complete(USER)
