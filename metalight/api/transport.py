"""The one HTTP transport under every remote model (chat endpoints, log-prob endpoints, HTTP judges).

It POSTs JSON through ``urllib`` (proxies from the environment apply) and owns what every client needs alike:

* **retries** of timeouts, connection errors, 429 and 5xx (and replies the caller finds malformed) with
  exponential backoff plus jitter; a server's ``Retry-After`` is honoured but, like every wait, capped at
  ``max_backoff_s``; other statuses (400, 404, ...) fail at once with the server's explanation from the body;
* **a whole-request deadline**: ``timeout_s`` bounds connect, headers and body together; a server trickling
  bytes cannot hold a request longer (a watchdog thread cuts the connection);
* **cancellation**: a :class:`StopFlag` set by SIGINT / SIGTERM (:class:`stop_on_signals`) ends every wait and
  cuts the connections in flight at once;
* **keys**: ``api_key_env`` must name an environment variable (a value shaped like a key is refused, and its
  value is never echoed); the variable must be set (the message shows only the name's length); 401 / 403
  stop at once as a key problem, never retried.
"""

from __future__ import annotations

import contextlib
import http.client
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
from collections.abc import Callable
from typing import Any, TypeVar

from metalight.errors import ConfigError, Interrupted, MetalightError

log = logging.getLogger(__name__)

T = TypeVar("T")
RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
AUTH_STATUS = {401, 403}
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Prefixes of provider keys and tokens (Hugging Face, OpenAI, Groq, xAI, GitHub, Google, Replicate, ...).
KEY_PREFIXES = (
    "hf_",
    "sk-",
    "sk_",
    "gsk_",
    "xai-",
    "ghp_",
    "gho_",
    "github_pat_",
    "AIza",
    "r8_",
    "pplx-",
    "nvapi-",
)
_WATCH_INTERVAL_S = 0.05


def looks_like_key(value: str) -> bool:
    """Whether ``api_key_env`` holds something other than a variable name: not a valid name (``sk-...``), a
    provider key prefix (``hf_...``), a long mixed-case-and-digit token, or a run of 20 or more letters and
    digits without an underscore (variable names are words joined by ``_``; keys are one long run)."""
    if not _ENV_NAME.fullmatch(value) or value.startswith(KEY_PREFIXES):
        return True
    if len(value) >= 20 and any(c.isdigit() for c in value) and any(c.islower() for c in value):
        return True
    return max(len(run) for run in value.split("_")) >= 20


def key_env_problem(api_key_env: str | None, setting: str) -> str | None:
    """Why ``api_key_env`` (the config key ``setting``) cannot be a variable name, or ``None`` when it can;
    the text never contains the value (it is probably the key itself)."""
    if api_key_env is None or not looks_like_key(api_key_env):
        return None
    return (
        f"{setting} must be the NAME of an environment variable holding the key (e.g. OPENAI_API_KEY), not "
        f"the key itself: export OPENAI_API_KEY=<key> and set {setting}: OPENAI_API_KEY"
    )


def require_key(api_key_env: str | None, setting: str) -> None:
    """Raise ``ConfigError`` when the variable named in ``api_key_env`` is not set. The name itself is not
    shown (a key pasted in place of the name would be echoed), only its length."""
    if api_key_env and not os.environ.get(api_key_env):
        raise ConfigError(
            f"the variable named in {setting} is not set (a name of {len(api_key_env)} characters, not "
            f"shown in case it is a key pasted by mistake): export it with your key, or set {setting}: "
            f"null for an endpoint that needs no key"
        )


class AuthError(ConfigError):
    """The endpoint refused the key (HTTP 401 / 403): it is missing or wrong; retrying cannot help."""


class RequestFailed(MetalightError):
    """A request failed for good (retries exhausted, or a status that retrying cannot fix); ``attempts`` says
    how many were made and the message names the URL, the status and the server's explanation."""

    def __init__(self, message: str, attempts: int):
        super().__init__(message)
        self.attempts = attempts


class BadReply(Exception):
    """Raised by a caller's ``parse`` for a reply it cannot use; ``retryable`` asks for another attempt."""

    def __init__(self, message: str, retryable: bool = True):
        super().__init__(message)
        self.retryable = retryable


class StopFlag:
    """Set by SIGINT / SIGTERM (or a fatal error): waits end at once, connections in flight are cut, no new
    request starts. ``reason`` names the signal; ``resume_hint`` ends the :class:`Interrupted` message."""

    def __init__(self, resume_hint: str = ""):
        self.event = threading.Event()
        self.reason: str | None = None
        self.resume_hint = resume_hint

    def set(self, reason: str | None = None) -> None:
        """Stop, remembering the first reason given."""
        self.reason = self.reason or reason
        self.event.set()

    def is_set(self) -> bool:
        """Whether a stop was asked for."""
        return self.event.is_set()

    def error(self) -> Interrupted:
        """The exception that ends the run (exit 130 for SIGINT, 143 for SIGTERM)."""
        return Interrupted(
            f"stopped by {self.reason or 'an earlier failure'} while waiting for API replies"
            f"{self.resume_hint}",
            signal_name=self.reason or "SIGINT",
        )


class stop_on_signals:
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


class _Request:
    """One attempt in flight: its deadline, stop flag and sockets, and why it was cut (``None``: it was
    not)."""

    def __init__(self, deadline: float, stop: StopFlag | None):
        self.deadline, self.stop = deadline, stop
        self.sockets: list[socket.socket] = []
        self.cut_reason: str | None = None
        self.lock = threading.Lock()

    def add_socket(self, sock: socket.socket) -> None:
        with self.lock:
            self.sockets.append(sock)
            cut = self.cut_reason is not None
        if cut:
            _shutdown(sock)

    def check(self, now: float) -> None:
        """Cut the connection when the deadline has passed or a stop was asked for."""
        if self.cut_reason is not None:
            return
        reason = (
            "stop"
            if self.stop is not None and self.stop.is_set()
            else "deadline"
            if now > self.deadline
            else None
        )
        if reason is None:
            return
        with self.lock:
            self.cut_reason = reason
            sockets = list(self.sockets)
        for sock in sockets:
            _shutdown(sock)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)  # a blocked recv in the worker thread returns at once


class _Watchdog:
    """One daemon thread that checks the requests in flight every 50 ms (it exits when none is left)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active: set[_Request] = set()
        self.thread: threading.Thread | None = None

    def watch(self, request: _Request) -> None:
        with self.lock:
            self.active.add(request)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="metalight-http-watchdog", daemon=True)
                self.thread.start()

    def forget(self, request: _Request) -> None:
        with self.lock:
            self.active.discard(request)

    def _run(self) -> None:
        while True:
            time.sleep(_WATCH_INTERVAL_S)
            with self.lock:
                if not self.active:
                    self.thread = None
                    return
                active = list(self.active)
            now = time.monotonic()
            for request in active:
                request.check(now)


_watchdog = _Watchdog()
_current = threading.local()


def _tracked(connection_class: type) -> type:
    """``connection_class`` whose sockets are handed to the request in flight on this thread (so the watchdog
    can cut them)."""

    class Tracked(connection_class):
        def connect(self):
            super().connect()
            request = getattr(_current, "request", None)
            if request is not None and self.sock is not None:
                request.add_socket(self.sock)

    return Tracked


class _TrackingHTTPHandler(urllib.request.HTTPHandler):
    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_TRACKED_HTTP, req, **kwargs)


class _TrackingHTTPSHandler(urllib.request.HTTPSHandler):
    def do_open(self, http_class, req, **kwargs):
        return super().do_open(_TRACKED_HTTPS, req, **kwargs)


_TRACKED_HTTP = _tracked(http.client.HTTPConnection)
_TRACKED_HTTPS = _tracked(http.client.HTTPSConnection)
_OPENER = urllib.request.build_opener(_TrackingHTTPHandler, _TrackingHTTPSHandler)


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line, at most ``limit`` characters."""
    return " ".join(text.split())[:limit]


class HttpTransport:
    """POST JSON with retries, a whole-request deadline, cancellation and key handling (module docstring).

    Args:
        timeout_s: deadline of one attempt (connect, headers and body), seconds.
        max_retries: retries after the first attempt for retryable failures.
        backoff_s: first wait between attempts, seconds (doubles per retry, with jitter).
        max_backoff_s: longest wait between two attempts (a server's ``Retry-After`` included), seconds.
        api_key_env: environment variable holding the key, sent as ``Authorization: Bearer`` (``None``: none).
        key_setting: the config key of ``api_key_env``, named in errors (e.g. ``endpoint.api_key_env``).
        model: the model name, named in the error of a rejected key.
        sleep: replaces the wait between attempts (tests); by default a wait ends early on a stop.
    """

    @classmethod
    def for_endpoint(cls, endpoint, key_setting: str, sleep: Callable[[float], None] | None = None):
        """The transport of an endpoint's settings (``timeout_s``, ``max_retries``, ``backoff_s``,
        ``max_backoff_s``, ``api_key_env``, ``model``); ``key_setting`` names its key in errors."""
        return cls(
            endpoint.timeout_s,
            endpoint.max_retries,
            endpoint.backoff_s,
            endpoint.max_backoff_s,
            endpoint.api_key_env,
            key_setting,
            endpoint.model,
            sleep,
        )

    def __init__(
        self,
        timeout_s: float,
        max_retries: int,
        backoff_s: float,
        max_backoff_s: float,
        api_key_env: str | None,
        key_setting: str = "api_key_env",
        model: str = "",
        sleep: Callable[[float], None] | None = None,
    ):
        problem = key_env_problem(api_key_env, key_setting)
        if problem:
            raise ConfigError(problem)
        require_key(api_key_env, key_setting)
        self.timeout_s, self.max_retries = timeout_s, max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.api_key_env, self.model, self._sleep = api_key_env, model, sleep
        self.requests_sent = 0
        self._lock = threading.Lock()

    def post_json(
        self, url: str, body: dict[str, Any], parse: Callable[[Any], T], stop: StopFlag | None = None
    ) -> tuple[T, int]:
        """POST ``body`` to ``url`` and return ``(parse(reply JSON), attempts)``, retrying retryable failures.
        Raises :class:`RequestFailed` when no attempt succeeded, :class:`AuthError` on 401 / 403, and
        ``stop.error()`` (:class:`Interrupted`) once ``stop`` is set."""
        data = json.dumps(body).encode()
        error = ""
        for attempt in range(self.max_retries + 1):
            if stop is not None and stop.is_set():
                raise stop.error()
            try:
                return parse(self._attempt(url, data, stop)), attempt + 1
            except _Retryable as failure:
                error, retry_after = str(failure), failure.retry_after
            except _Fatal as failure:
                raise RequestFailed(str(failure), attempt + 1) from None
            except BadReply as failure:
                if not failure.retryable:
                    raise RequestFailed(f"{url}: {failure}", attempt + 1) from None
                error, retry_after = f"{url}: {failure}", None
            if attempt == self.max_retries:
                break
            self._wait(self.wait_s(attempt, retry_after), stop)
        attempts = self.max_retries + 1
        raise RequestFailed(f"{error}, after {attempts} attempt{'s' if attempts > 1 else ''}", attempts)

    def wait_s(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry ``attempt + 1``: the server's ``Retry-After`` or the jittered
        exponential backoff, never more than ``max_backoff_s``."""
        if retry_after is not None:
            return min(self.max_backoff_s, retry_after)
        return min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + random.random() / 2)

    def _wait(self, seconds: float, stop: StopFlag | None) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif stop is not None:
            stop.event.wait(seconds)
        else:
            time.sleep(seconds)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _attempt(self, url: str, data: bytes, stop: StopFlag | None) -> Any:
        """One attempt under the deadline; the reply's JSON, or ``_Retryable`` / ``RequestFailed``."""
        request = urllib.request.Request(url, data=data, headers=self._headers(), method="POST")
        with self._lock:
            self.requests_sent += 1
        inflight = _Request(time.monotonic() + self.timeout_s, stop)
        _current.request = inflight
        _watchdog.watch(inflight)
        try:
            try:
                with _OPENER.open(request, timeout=self.timeout_s) as response:
                    raw = response.read()
            except urllib.error.HTTPError as err:
                detail = self._error_body(err)
                self._after_cut(inflight, url, stop)
                self._refuse_auth(err.code, url)
                message = f"{url} answered HTTP {err.code}: {detail or err.reason}"
                if err.code in RETRYABLE_STATUS:
                    raise _Retryable(
                        message, _retry_after(err.headers.get("Retry-After") if err.headers else None)
                    ) from err
                raise _Fatal(
                    f"{message} (not retried: retrying does not change an HTTP {err.code})"
                ) from None
            except (OSError, http.client.HTTPException) as err:
                self._after_cut(inflight, url, stop)
                reason = getattr(err, "reason", err)
                raise _Retryable(
                    f"{url}: not reachable ({one_line(str(reason)) or type(reason).__name__})"
                ) from None
            self._after_cut(inflight, url, stop)
        finally:
            _watchdog.forget(inflight)
            _current.request = None
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BadReply(
                f"answered HTTP 200 with a body that is not JSON: "
                f"{one_line(raw.decode('utf-8', 'replace'))!r}"
            ) from None

    def _after_cut(self, inflight: _Request, url: str, stop: StopFlag | None) -> None:
        """Turn a connection the watchdog cut into the right failure (whatever the read returned)."""
        if inflight.cut_reason == "stop" and stop is not None:
            raise stop.error()
        if inflight.cut_reason == "deadline":
            raise _Retryable(
                f"{url}: no complete reply within timeout_s = {self.timeout_s:g} s (connect, headers and "
                f"body together)"
            )

    def _error_body(self, err: urllib.error.HTTPError) -> str:
        """The server's explanation (one line), with the key blanked out should the server echo it."""
        try:
            text = err.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            return ""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return one_line(text.replace(key, "<key>") if key else text)

    def _refuse_auth(self, status: int, url: str) -> None:
        if status in AUTH_STATUS:
            raise AuthError(
                f"HTTP {status} from {url}: the API key is missing or wrong; check the variable "
                f"{self.api_key_env or '(api_key_env is null: no key was sent)'} and that the key is "
                f"valid for model {self.model}"
            ) from None


class _Fatal(Exception):
    """A failure that another attempt cannot fix (e.g. HTTP 400 / 404)."""


class _Retryable(Exception):
    """A failure worth another attempt; ``retry_after`` is the server's ``Retry-After`` in seconds."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
