"""Top-k next-token log-probs from an OpenAI-compatible ``/completions`` endpoint (vLLM, llama.cpp server,
TGI's OpenAI route): what ICM needs to score claims with a served base model instead of a local forward.

One request carries several prompts (``prompt`` as a list, ``max_tokens: 1``, ``logprobs: k``, greedy); the
reply's ``choices[i].logprobs.top_logprobs[0]`` maps each of the k most likely first tokens to its log-prob.
Requests go through :class:`~metalight.api.transport.HttpTransport` (retries with capped backoff, a
whole-request deadline, the key guard); a failure that remains raises :class:`EndpointError`, one line naming
the URL, the HTTP status and the server's explanation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from metalight.api.transport import BadReply, HttpTransport, RequestFailed, key_env_problem, one_line
from metalight.errors import ConfigError, MetalightError


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
        timeout_s: deadline of one attempt in seconds (connect, headers and body together).
        max_retries: retries after the first attempt for retryable failures.
        backoff_s: first wait between attempts in seconds (doubles per retry, with jitter).
        prompts_per_request: prompts sent in one request.
        max_backoff_s: longest wait between two attempts (a server's ``Retry-After`` included), seconds.
    """

    base_url: str
    model: str = "default"
    top_logprobs: int = 20
    api_key_env: str | None = None
    timeout_s: float = 120.0
    max_retries: int = 3
    backoff_s: float = 1.0
    prompts_per_request: int = 8
    max_backoff_s: float = 30.0

    def __post_init__(self):
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"logprob_endpoint.base_url {self.base_url!r} must start with http:// or https://"
            )
        if (
            self.top_logprobs < 1
            or self.prompts_per_request < 1
            or self.timeout_s <= 0
            or self.max_retries < 0
        ):
            raise ConfigError(
                "logprob_endpoint: top_logprobs >= 1, prompts_per_request >= 1, timeout_s > 0 and "
                "max_retries >= 0 are required"
            )
        key_problem = key_env_problem(self.api_key_env, "logprob_endpoint.api_key_env")
        if key_problem:
            raise ConfigError(key_problem)

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/completions"


class CompletionsLogprobClient:
    """Asks a :class:`CompletionsEndpoint` for the top-k first-token log-probs of prompts.

    ``sleep`` is injectable so tests need not wait for real backoff; ``requests_sent`` counts HTTP requests.
    Raises ``ConfigError`` when ``api_key_env`` names a variable that is not set.
    """

    def __init__(self, endpoint: CompletionsEndpoint, sleep: Callable[[float], None] | None = None):
        self.endpoint = endpoint
        self.transport = HttpTransport.for_endpoint(endpoint, "logprob_endpoint.api_key_env", sleep)

    @property
    def requests_sent(self) -> int:
        """HTTP requests made so far (every attempt counts)."""
        return self.transport.requests_sent

    def top_logprobs(self, prompts: Sequence[str]) -> list[dict[str, float]]:
        """``{token text: log-prob}`` of the first generated position, one dict per prompt, in order."""
        out: list[dict[str, float]] = []
        size = self.endpoint.prompts_per_request
        for start in range(0, len(prompts), size):
            out.extend(self._request(list(prompts[start : start + size])))
        return out

    def _request(self, prompts: list[str]) -> list[dict[str, float]]:
        e = self.endpoint
        body = {
            "model": e.model,
            "prompt": prompts,
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": e.top_logprobs,
            "echo": False,
        }
        try:
            tops, _ = self.transport.post_json(e.url, body, lambda reply: _parse(reply, len(prompts)))
        except RequestFailed as failed:
            raise EndpointError(
                f"{failed}; check that the server is up and serves model {e.model!r}"
            ) from None
        return tops


def _parse(reply: dict, expected: int) -> list[dict[str, float]]:
    """The first position's top log-probs of each choice, ordered by ``index`` (``BadReply`` otherwise)."""
    try:
        choices = sorted(reply["choices"], key=lambda c: c.get("index", 0))
        tops = [c["logprobs"]["top_logprobs"][0] for c in choices]
        tops = [{str(token): float(value) for token, value in top.items()} for top in tops]
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise BadReply(
            f"answered HTTP 200 without choices[i].logprobs.top_logprobs[0] (reply starts "
            f"{one_line(json.dumps(reply))[:160]!r}); the server must support the completions API's "
            f"`logprobs`",
            retryable=False,
        ) from None
    if len(tops) != expected:
        raise BadReply(
            f"answered {len(tops)} choices for {expected} prompts; serve one completion per prompt (n = 1)",
            retryable=False,
        )
    return tops
