"""A small client for OpenAI-compatible ``/chat/completions`` endpoints (API models, LLM judges).

It needs no SDK: requests go through ``urllib`` with a timeout, retries with exponential backoff (+ jitter,
honouring ``Retry-After``) on timeouts, connection errors, 429 and 5xx, and a bounded thread pool. Every wait
is capped at ``max_backoff_s`` (a server's ``Retry-After`` included) and ends at once on SIGINT / SIGTERM,
which stop the run with :class:`~metalight.errors.Interrupted` (answered prompts stay cached). The API key is
read from the environment variable named by ``api_key_env`` (which must be set; a value that looks like a key
itself is refused) at request time and never stored, logged or written anywhere; a 401 / 403 stops the run
saying the key is missing or wrong.
An optional on-disk JSONL cache keyed by the request makes an interrupted evaluation resume without paying
again for answered prompts. A request that still fails is returned as ``ChatResult(ok=False)`` — callers
count it as missing instead of crashing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metalight.errors import ConfigError, Interrupted

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
AUTH_STATUS = {401, 403}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class StopFlag:
    """Set by SIGINT / SIGTERM (or a fatal error) during one ``complete_many``: its waits end at once and no
    new request starts; ``reason`` names the signal."""

    def __init__(self):
        self.event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str | None = None) -> None:
        """Stop, remembering the first reason given."""
        self.reason = self.reason or reason
        self.event.set()


def looks_like_key(value: str) -> bool:
    """Whether ``api_key_env`` holds something other than a variable name: not a valid name (``sk-...``),
    or a long mixed-case-and-digit token such as a key pasted in by mistake."""
    if not _ENV_NAME.fullmatch(value):
        return True
    return len(value) >= 20 and any(c.isdigit() for c in value) and any(c.islower() for c in value)


class AuthError(ConfigError):
    """The endpoint refused the key (HTTP 401 / 403): it is missing or wrong; retrying cannot help."""


@dataclass(frozen=True)
class ChatEndpoint:
    """Where and how to call an OpenAI-compatible chat endpoint.

    Args:
        base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1`` (``/chat/completions``
            is appended).
        model: the model name the endpoint expects.
        api_key_env: name of the environment variable holding the key (``None``: send no key).
        timeout_s: per-request timeout in seconds.
        max_retries: retries after the first attempt for retryable failures.
        backoff_s: first backoff in seconds; doubles per retry (with jitter), capped at ``max_backoff_s``.
        max_backoff_s: longest wait between two attempts, in seconds.
        max_concurrency: requests in flight at once.
        temperature: sampling temperature sent with each request (``None``: not sent; some reasoning models
            accept only their default).
        max_tokens: completion budget sent with each request (``max_tokens``).
        max_completion_tokens: sent *instead of* ``max_tokens`` when set (reasoning models reject
            ``max_tokens``; this budget includes their reasoning tokens).
        reasoning_effort: sent as ``reasoning_effort`` when set (e.g. ``low``, ``medium``, ``high``).
        extra_body: further request fields, sent as given (they override the fields above).
    """

    base_url: str
    model: str
    api_key_env: str | None = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_concurrency: int = 8
    temperature: float | None = 0.0
    max_tokens: int = 32
    max_completion_tokens: int | None = None
    reasoning_effort: str | None = None
    extra_body: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        problems = []
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url {self.base_url!r} must start with http:// or https://")
        if self.max_concurrency < 1 or self.max_retries < 0 or self.timeout_s <= 0:
            problems.append("max_concurrency >= 1, max_retries >= 0 and timeout_s > 0 are required")
        if self.backoff_s < 0 or self.max_backoff_s < 0:
            problems.append("backoff_s and max_backoff_s must be >= 0 (seconds)")
        if self.api_key_env is not None and looks_like_key(self.api_key_env):
            # Never echo the value: it is probably the key itself.
            problems.append("api_key_env must be the NAME of an environment variable holding the key (e.g. "
                            "OPENAI_API_KEY), not the key itself: export OPENAI_API_KEY=<key> and set "
                            "api_key_env: OPENAI_API_KEY")
        if problems:
            raise ConfigError("chat endpoint: " + "; ".join(problems))


@dataclass
class ChatResult:
    """One completion: ``text`` when ``ok``; otherwise ``error`` says why (never containing the key)."""

    text: str | None
    ok: bool
    error: str | None = None
    attempts: int = 0
    cached: bool = False


class ChatClient:
    """Calls a :class:`ChatEndpoint` with retries, a concurrency limit and an optional response cache.

    ``sleep`` is injectable so tests need not wait for real backoff (the default wait ends early on
    SIGINT / SIGTERM). Raises ``ConfigError`` when ``api_key_env`` names a variable that is not set.
    """

    def __init__(self, endpoint: ChatEndpoint, cache_path: str | Path | None = None,
                 sleep: Callable[[float], None] | None = None):
        if endpoint.api_key_env and not os.environ.get(endpoint.api_key_env):
            raise ConfigError(f"the API key variable {endpoint.api_key_env} (endpoint.api_key_env) is not set: "
                              f"export {endpoint.api_key_env}=<your key>, or set api_key_env: null for an "
                              f"endpoint that needs no key")
        self.endpoint = endpoint
        self.cache_path = Path(cache_path) if cache_path else None
        self._sleep = sleep
        self._lock = threading.Lock()
        self._cache: dict[str, str] = self._load_cache() if self.cache_path else {}
        self.requests_sent = 0
        # Tokens the endpoint reported for the replies it sent (cached replies cost nothing and are not counted).
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0}

    # ---- cache ------------------------------------------------------------------------------------------
    def request_key(self, messages: Messages) -> str:
        """Stable hash of everything that determines the response."""
        e = self.endpoint
        payload = [e.base_url.rstrip("/"), e.model, e.temperature, e.max_tokens, messages]
        extra = {k: v for k, v in self.request_body([]).items() if k not in ("model", "messages", "temperature",
                                                                               "max_tokens")}
        if extra:  # only then: caches written before these fields existed keep their keys
            payload.append(extra)
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _load_cache(self) -> dict[str, str]:
        cache: dict[str, str] = {}
        if not self.cache_path.is_file():
            return cache
        with self.cache_path.open(encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                try:
                    row = json.loads(line)
                    cache[row["key"]] = row["text"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    log.warning("%s:%d: unreadable cache line skipped (an interrupted write?)", self.cache_path,
                                line_no)
        return cache

    def _store(self, key: str, text: str) -> None:
        with self._lock:
            self._cache[key] = text
            if self.cache_path is None:
                return
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            with self.cache_path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"key": key, "text": text}, ensure_ascii=False) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    # ---- requests -----------------------------------------------------------------------------------------
    def request_body(self, messages: Messages) -> dict[str, Any]:
        """The JSON body of one request: model, messages, and the endpoint's generation fields."""
        e = self.endpoint
        body: dict[str, Any] = {"model": e.model, "messages": messages}
        if e.temperature is not None:
            body["temperature"] = e.temperature
        if e.max_completion_tokens is not None:
            body["max_completion_tokens"] = e.max_completion_tokens
        else:
            body["max_tokens"] = e.max_tokens
        if e.reasoning_effort is not None:
            body["reasoning_effort"] = e.reasoning_effort
        return {**body, **e.extra_body}

    def _count_usage(self, usage: dict | None) -> None:
        if not isinstance(usage, dict):
            return
        details = usage.get("completion_tokens_details") or {}
        with self._lock:
            self.usage["prompt_tokens"] += int(usage.get("prompt_tokens") or 0)
            self.usage["completion_tokens"] += int(usage.get("completion_tokens") or 0)
            self.usage["reasoning_tokens"] += int(details.get("reasoning_tokens") or 0)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.endpoint.api_key_env:
            key = os.environ.get(self.endpoint.api_key_env)
            if key:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    def _post(self, messages: Messages) -> tuple[str | None, str | None, bool, float | None]:
        """One attempt: (text, error, retryable, retry_after_s)."""
        e = self.endpoint
        body = json.dumps(self.request_body(messages)).encode()
        url = e.base_url.rstrip("/") + "/chat/completions"
        request = urllib.request.Request(url, data=body, headers=self._headers(), method="POST")
        with self._lock:
            self.requests_sent += 1
        try:
            with urllib.request.urlopen(request, timeout=e.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            if err.code in AUTH_STATUS:
                raise AuthError(f"HTTP {err.code} from {url}: the API key is missing or wrong; check the "
                                f"variable {e.api_key_env or '(api_key_env is null: no key was sent)'} and "
                                f"that the key is valid for model {e.model}") from None
            retry_after = _retry_after(err.headers.get("Retry-After") if err.headers else None)
            return None, f"HTTP {err.code} from {url}", err.code in RETRYABLE_STATUS, retry_after
        except (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError) as err:
            reason = getattr(err, "reason", err)
            return None, f"no response from {url} ({type(reason).__name__})", True, None
        try:
            reply = json.loads(raw)
            text = reply["choices"][0]["message"]["content"]
            self._count_usage(reply.get("usage"))
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, AttributeError):
            return None, f"malformed response from {url} (not an OpenAI chat completion)", True, None
        if not isinstance(text, str):
            return None, f"malformed response from {url} (content is not text)", True, None
        return text.strip(), None, False, None

    def complete(self, messages: Messages, stop: StopFlag | None = None) -> ChatResult:
        """One chat completion with retries; cached responses are returned without a request."""
        key = self.request_key(messages)
        if key in self._cache:
            return ChatResult(self._cache[key], True, cached=True)
        error, attempts = None, 0
        for attempt in range(self.endpoint.max_retries + 1):
            self._check_stop(stop)
            attempts = attempt + 1
            text, error, retryable, retry_after = self._post(messages)
            if text is not None:
                self._store(key, text)
                return ChatResult(text, True, attempts=attempts)
            if not retryable or attempt == self.endpoint.max_retries:
                break
            seconds = self.wait_s(attempt, retry_after)
            if self._sleep is not None:
                self._sleep(seconds)
            elif stop is not None:
                stop.event.wait(seconds)
            else:
                time.sleep(seconds)
        log.warning("chat request failed after %d attempt(s): %s", attempts, error)
        return ChatResult(None, False, error=error, attempts=attempts)

    def wait_s(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt + 1``: the server's ``Retry-After`` or the jittered
        exponential backoff, never more than ``max_backoff_s``."""
        e = self.endpoint
        if retry_after is not None:
            return min(e.max_backoff_s, retry_after)
        return min(e.max_backoff_s, e.backoff_s * 2 ** attempt) * (0.5 + random.random() / 2)

    def _check_stop(self, stop: StopFlag | None) -> None:
        if stop is not None and stop.event.is_set():
            where = f"; replies received so far are cached in {self.cache_path}: re-run the same command to " \
                    f"resume" if self.cache_path else ""
            raise Interrupted(f"stopped by {stop.reason or 'an earlier failure'} while waiting for API replies{where}",
                              signal_name=stop.reason or "SIGINT")

    def complete_many(self, conversations: Sequence[Messages], progress: bool = False) -> list[ChatResult]:
        """Complete many conversations with at most ``max_concurrency`` in flight; order is preserved.
        SIGINT / SIGTERM stop it promptly with :class:`~metalight.errors.Interrupted`."""
        if not conversations:
            return []
        stop = StopFlag()
        pool = ThreadPoolExecutor(max_workers=self.endpoint.max_concurrency)
        futures = [pool.submit(self.complete, c, stop) for c in conversations]
        try:
            with _stop_on_signals(stop):
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
                    for future in done:
                        future.result()  # raise the first failure (auth, interruption) now
                    self._check_stop(stop)
                    if progress and done:
                        log.info("chat requests: %d/%d done", len(futures) - len(pending), len(futures))
        except BaseException:
            stop.set()  # a fatal error (a rejected key, a signal): the other workers start no new request
            raise
        finally:
            # The flag stays set after an interruption so busy workers end too. An interrupted or failed run does not wait for queued requests; one in flight ends within timeout_s.
            pool.shutdown(wait=False, cancel_futures=True)
        return [future.result() for future in futures]

    def describe(self) -> dict[str, Any]:
        """Endpoint settings for reports (the key's variable name, never its value)."""
        return asdict(self.endpoint)


class _stop_on_signals:
    """While active in the main thread, SIGINT and SIGTERM set ``stop`` instead of their old action (which
    comes back on exit)."""

    def __init__(self, stop: StopFlag):
        self.stop = stop
        self.previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.stop.set(signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
