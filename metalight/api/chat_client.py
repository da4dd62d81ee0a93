"""A small client for OpenAI-compatible ``/chat/completions`` endpoints (API models, LLM judges).

It needs no SDK: requests go through :class:`~metalight.api.transport.HttpTransport` (retries with capped
backoff, a whole-request deadline, cancellation on SIGINT / SIGTERM, the key read from the variable named by
``api_key_env`` and never stored, logged or written) and a bounded thread pool. An optional on-disk JSONL
cache keyed by the request makes an interrupted evaluation resume without paying again for answered prompts; a
cache that cannot be written keeps the replies in memory (counted, warned once), and an unreadable cache line
(cut by a crash, not UTF-8) is skipped and counted. A reply far longer than its token budget is cut and
counted. A request that still fails is returned as ``ChatResult(ok=False)`` — callers count it as missing
instead of crashing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from metalight.api.transport import (
    AuthError,
    BadReply,
    HttpTransport,
    RequestFailed,
    StopFlag,
    key_env_problem,
    stop_on_signals,
)
from metalight.errors import ConfigError
from metalight.io import append_line, read_lines

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]
__all__ = ["AuthError", "ChatClient", "ChatEndpoint", "ChatResult", "Messages"]
# A reply longer than this many characters per token of its budget (plus a margin) is cut: a server ignoring
# max_tokens (12 MB for 16 tokens has been seen) would otherwise fill memory, the cache and the samples.
REPLY_CHARS_PER_TOKEN = 32
REPLY_CHARS_MARGIN = 64


@dataclass(frozen=True)
class ChatEndpoint:
    """Where and how to call an OpenAI-compatible chat endpoint.

    Args:
        base_url: e.g. ``https://api.openai.com/v1`` or ``http://127.0.0.1:8000/v1`` (``/chat/completions``
            is appended).
        model: the model name the endpoint expects.
        api_key_env: name of the environment variable holding the key (``None``: send no key).
        timeout_s: deadline of one attempt in seconds: connect, headers and body together (a server sending
            a byte at a time cannot stretch it).
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
        key_problem = key_env_problem(self.api_key_env, "api_key_env")
        if key_problem:
            problems.append(key_problem)
        if problems:
            raise ConfigError("chat endpoint: " + "; ".join(problems))

    def reply_budget(self) -> int:
        """The token budget of one reply: ``max_completion_tokens`` when set, else ``max_tokens``."""
        return self.max_completion_tokens if self.max_completion_tokens is not None else self.max_tokens


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
    ``counts`` holds what deserves a look in a report: ``cache_skipped_lines`` (unreadable cache lines),
    ``cache_unwritten`` (replies the cache could not store) and ``oversized_replies`` (cut to their budget).
    """

    def __init__(
        self,
        endpoint: ChatEndpoint,
        cache_path: str | Path | None = None,
        sleep: Callable[[float], None] | None = None,
        key_setting: str = "endpoint.api_key_env",
    ):
        self.endpoint = endpoint
        self.transport = HttpTransport.for_endpoint(endpoint, key_setting, sleep)
        self.url = endpoint.base_url.rstrip("/") + "/chat/completions"
        self.cache_path = Path(cache_path) if cache_path else None
        self.counts = {"cache_skipped_lines": 0, "cache_unwritten": 0, "oversized_replies": 0}
        self._cache: dict[str, str] = self._load_cache() if self.cache_path else {}
        self._cache_broken: str | None = None
        # Tokens the endpoint reported for the replies it sent (cached replies cost nothing and are not
        # counted).
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0}
        self._lock = threading.Lock()

    @property
    def requests_sent(self) -> int:
        """HTTP requests made so far (every attempt counts)."""
        return self.transport.requests_sent

    # ---- cache ------------------------------------------------------------------------------------------
    def request_key(self, messages: Messages) -> str:
        """Stable hash of everything that determines the response."""
        e = self.endpoint
        payload = [e.base_url.rstrip("/"), e.model, e.temperature, e.max_tokens, messages]
        extra = {
            k: v
            for k, v in self.request_body([]).items()
            if k not in ("model", "messages", "temperature", "max_tokens")
        }
        if extra:  # only then: caches written before these fields existed keep their keys
            payload.append(extra)
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _load_cache(self) -> dict[str, str]:
        """The cached replies; a line that is not UTF-8 JSON with ``key`` and ``text`` (an interrupted write,
        an edited file) is skipped, counted and named once in a warning."""
        cache: dict[str, str] = {}
        bad: list[int] = []
        for line_no, raw in read_lines(self.cache_path):
            try:
                row = json.loads(raw.decode("utf-8"))
                cache[row["key"]] = row["text"]
            except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                bad.append(line_no)
        if bad:
            self.counts["cache_skipped_lines"] = len(bad)
            log.warning(
                "%s: %d unreadable cache line(s) skipped (line %s; an interrupted write, or not UTF-8 "
                "JSON): their prompts are asked again",
                self.cache_path,
                len(bad),
                ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else ""),
            )
        return cache

    def _store(self, key: str, text: str) -> None:
        with self._lock:
            self._cache[key] = text
            if self.cache_path is None:
                return
            if self._cache_broken is None:
                try:
                    append_line(self.cache_path, json.dumps({"key": key, "text": text}, ensure_ascii=False))
                    return
                except OSError as err:
                    self._cache_broken = err.strerror or type(err).__name__
                    log.warning(
                        "cannot write the API cache %s (%s): this run keeps its replies in memory, but a "
                        "re-run pays for them again; make the file writable or set "
                        "model.init_args.cache_path to a writable file",
                        self.cache_path,
                        self._cache_broken,
                    )
            self.counts["cache_unwritten"] += 1

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

    def _reply_text(self, reply: Any) -> str:
        """The reply's text (``BadReply`` when it is not an OpenAI chat completion), cut when far over
        budget."""
        try:
            text = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise BadReply("malformed response (not an OpenAI chat completion)") from None
        if not isinstance(text, str):
            raise BadReply("malformed response (content is not text)")
        self._count_usage(reply.get("usage") if isinstance(reply, dict) else None)
        limit = REPLY_CHARS_PER_TOKEN * self.endpoint.reply_budget() + REPLY_CHARS_MARGIN
        if len(text) > limit:
            with self._lock:
                self.counts["oversized_replies"] += 1
                first = self.counts["oversized_replies"] == 1
            if first:
                log.warning(
                    "%s sent a reply of %d characters for a budget of %d tokens: such replies are cut to "
                    "%d characters and counted (oversized_replies); the server seems to ignore max_tokens",
                    self.url,
                    len(text),
                    self.endpoint.reply_budget(),
                    limit,
                )
            text = text[:limit]
        return text.strip()

    def complete(self, messages: Messages, stop: StopFlag | None = None) -> ChatResult:
        """One chat completion with retries; cached responses are returned without a request."""
        key = self.request_key(messages)
        if key in self._cache:
            return ChatResult(self._cache[key], True, cached=True)
        try:
            text, attempts = self.transport.post_json(
                self.url, self.request_body(messages), self._reply_text, stop
            )
        except RequestFailed as failed:
            log.warning("chat request failed: %s", failed)
            return ChatResult(None, False, error=str(failed), attempts=failed.attempts)
        self._store(key, text)
        return ChatResult(text, True, attempts=attempts)

    def wait_s(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt + 1`` (see :meth:`HttpTransport.wait_s`)."""
        return self.transport.wait_s(attempt, retry_after)

    def complete_many(self, conversations: Sequence[Messages], progress: bool = False) -> list[ChatResult]:
        """Complete many conversations with at most ``max_concurrency`` in flight; order is preserved.
        SIGINT / SIGTERM stop it promptly with :class:`~metalight.errors.Interrupted` (requests in flight are
        cut, not waited for)."""
        if not conversations:
            return []
        hint = (
            f"; replies received so far are cached in {self.cache_path}: re-run the same command to resume"
            if self.cache_path
            else ""
        )
        stop = StopFlag(hint)
        pool = ThreadPoolExecutor(max_workers=self.endpoint.max_concurrency)
        futures = [pool.submit(self.complete, c, stop) for c in conversations]
        try:
            with stop_on_signals(stop):
                pending = set(futures)
                while pending:
                    done, pending = wait(pending, timeout=0.1, return_when=FIRST_EXCEPTION)
                    for future in done:
                        future.result()  # raise the first failure (auth, interruption) now
                    if stop.is_set():
                        raise stop.error()
                    if progress and done:
                        log.info("chat requests: %d/%d done", len(futures) - len(pending), len(futures))
        except BaseException:
            # a fatal error (a rejected key, a signal): the other workers stop and start nothing new
            stop.set()
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return [future.result() for future in futures]

    def describe(self) -> dict[str, Any]:
        """Endpoint settings for reports (the key's variable name, never its value)."""
        return asdict(self.endpoint)
