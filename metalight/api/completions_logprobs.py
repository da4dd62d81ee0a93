"""Top-k next-token log-probs from an OpenAI-compatible ``/completions`` endpoint (vLLM, llama.cpp server,
TGI's OpenAI route): what ICM needs to score claims with a served base model instead of a local forward.

One request carries several prompts (``prompt`` as a list, ``max_tokens: 1``, ``logprobs: k``, greedy); the
reply's ``choices[i].logprobs.top_logprobs[0]`` maps each of the k most likely first tokens to its log-prob.
Retryable failures (connection errors, timeouts, 429, 5xx) are retried with doubling backoff; a failure that
remains raises :class:`EndpointError`, one line naming the URL and the HTTP status.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metalight.errors import ConfigError, MetalightError

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class EndpointError(MetalightError, RuntimeError):
    """A log-prob endpoint could not be reached or answered with an error / an unreadable reply."""


@dataclass(frozen=True)
class CompletionsEndpoint:
    """Where and how to ask for next-token log-probs.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1`` (``/completions`` is appended).
        model: the model name the server expects (vLLM: the served model; llama.cpp ignores it).
        top_logprobs: how many most likely tokens the server returns per position (vLLM allows 20 by
            default, OpenAI 5); label words outside them count as probability 0, as upstream.
        api_key_env: environment variable holding a key sent as ``Authorization: Bearer`` (``None``: none).
        timeout_s: per-request timeout in seconds.
        max_retries: retries after the first attempt for retryable failures.
        backoff_s: first wait between attempts in seconds (doubles per retry).
        prompts_per_request: prompts sent in one request.
    """

    base_url: str
    model: str = "default"
    top_logprobs: int = 20
    api_key_env: str | None = None
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 1.0
    prompts_per_request: int = 8

    def __post_init__(self):
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"logprob_endpoint.base_url {self.base_url!r} must start with http:// or https://")
        if self.top_logprobs < 1 or self.prompts_per_request < 1 or self.timeout_s <= 0 or self.max_retries < 0:
            raise ConfigError("logprob_endpoint: top_logprobs >= 1, prompts_per_request >= 1, timeout_s > 0 and "
                              "max_retries >= 0 are required")

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/completions"


class CompletionsLogprobClient:
    """Asks a :class:`CompletionsEndpoint` for the top-k first-token log-probs of prompts.

    ``sleep`` is injectable so tests need not wait for real backoff; ``requests_sent`` counts HTTP requests.
    """

    def __init__(self, endpoint: CompletionsEndpoint, sleep: Callable[[float], None] = time.sleep):
        self.endpoint = endpoint
        self._sleep = sleep
        self.requests_sent = 0

    def top_logprobs(self, prompts: Sequence[str]) -> list[dict[str, float]]:
        """``{token text: log-prob}`` of the first generated position, one dict per prompt, in order."""
        out: list[dict[str, float]] = []
        size = self.endpoint.prompts_per_request
        for start in range(0, len(prompts), size):
            out.extend(self._request(list(prompts[start:start + size])))
        return out

    def _request(self, prompts: list[str]) -> list[dict[str, float]]:
        e = self.endpoint
        body = json.dumps({"model": e.model, "prompt": prompts, "max_tokens": 1, "temperature": 0.0,
                           "logprobs": e.top_logprobs, "echo": False}).encode()
        for attempt in range(e.max_retries + 1):
            try:
                return _parse(self._post(body), len(prompts), e.url)
            except _Retryable as err:
                if attempt == e.max_retries:
                    raise EndpointError(f"{e.url}: {err} after {attempt + 1} attempts; check that the server "
                                        f"is up and serves model {e.model!r}") from None
                self._sleep(e.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")

    def _post(self, body: bytes) -> dict:
        e = self.endpoint
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(e.api_key_env) if e.api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(e.url, data=body, headers=headers, method="POST")
        self.requests_sent += 1
        try:
            with urllib.request.urlopen(request, timeout=e.timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as err:
            detail = _one_line(err.read().decode("utf-8", "replace"))
            if err.code in RETRYABLE_STATUS:
                raise _Retryable(f"HTTP {err.code} {detail}") from None
            raise EndpointError(f"{e.url} answered HTTP {err.code}: {detail or err.reason}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
            raise _Retryable(f"not reachable ({_one_line(str(getattr(err, 'reason', err)))})") from None
        try:
            return json.loads(raw)
        except json.JSONDecodeError:
            raise EndpointError(f"{e.url} answered HTTP 200 with a body that is not JSON: "
                                f"{_one_line(raw.decode('utf-8', 'replace'))!r}") from None


class _Retryable(Exception):
    """A failure worth another attempt (its text goes into the final error)."""


def _parse(reply: dict, expected: int, url: str) -> list[dict[str, float]]:
    """The first position's top log-probs of each choice, ordered by ``index``."""
    try:
        choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
        tops = [c["logprobs"]["top_logprobs"][0] for c in choices]
        tops = [{str(token): float(value) for token, value in top.items()} for top in tops]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise EndpointError(f"{url} answered HTTP 200 without choices[i].logprobs.top_logprobs[0] "
                            f"(reply starts {_one_line(json.dumps(reply))[:160]!r}); the server must support "
                            f"the completions API's `logprobs`") from None
    if len(tops) != expected:
        raise EndpointError(f"{url} answered {len(tops)} choices for {expected} prompts; serve one completion "
                            f"per prompt (n = 1)")
    return tops


def _one_line(text: str, limit: int = 200) -> str:
    return " ".join(text.split())[:limit]
