"""LLM judges and writers: a chat backend (a local HF model, or any OpenAI-compatible endpoint) and MetaConf's
reflection-quality judge on top of it.

A backend answers a list of chat conversations with one text each, ``None`` where it failed (after the
endpoint's retries); callers count failures as missing scores instead of crashing. The HTTP backend reads its
API key from the environment variable it is given, at request time; the key never appears in a config, a log
or a report (``describe()`` names the variable only).
"""

from __future__ import annotations

import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metalight.api.chat_client import ChatClient, ChatEndpoint, Messages
from metalight.models.chat import render_chat
from metalight.models.generation import Decoding, Prompt, generate
from metalight.models.loading import DTypeName, load_model
from metalight.prompts import metaconf_judge_prompt

log = logging.getLogger(__name__)


class ChatBackend(ABC):
    """Answers chat conversations: one text per conversation, ``None`` where the request failed."""

    @abstractmethod
    def complete_many(self, conversations: Sequence[Messages]) -> list[str | None]:
        """Complete every conversation, order preserved."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Settings for reports (never secrets)."""


class LocalChat(ChatBackend):
    """A local causal LM (any core model spec) answering with its chat template, greedy by default.

    Args:
        model: model spec (hub id, local directory, ``.gguf``, ``embedded:smollm2-135m-instruct``).
        dtype: parameter dtype.
        device: ``cpu``, ``cuda``, ... (``None``: CUDA when available).
        max_new_tokens: reply budget in tokens.
        max_input_tokens: conversation tokens kept (the end of a longer one).
        batch_size: conversations per ``generate`` call.
        temperature: 0 for greedy decoding, else sampling temperature.
    """

    def __init__(
        self,
        model: str = "embedded:smollm2-135m-instruct",
        dtype: DTypeName = "float32",
        device: str | None = None,
        max_new_tokens: int = 96,
        max_input_tokens: int = 1024,
        batch_size: int = 16,
        temperature: float = 0.0,
    ):
        self.spec, self.dtype, self.device = model, dtype, device
        self.max_new_tokens, self.max_input_tokens, self.batch_size = (
            max_new_tokens,
            max_input_tokens,
            batch_size,
        )
        self.temperature = temperature
        self._loaded = None

    def _model(self):
        if self._loaded is None:
            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._loaded = load_model(self.spec, self.dtype, device)
        return self._loaded

    def complete_many(self, conversations: Sequence[Messages]) -> list[str | None]:
        model, tokenizer = self._model()
        decoding = Decoding(
            max_new_tokens=self.max_new_tokens,
            strategy="greedy" if self.temperature == 0 else "sample",
            temperature=self.temperature or 1.0,
        )
        prompts = [
            Prompt(render_chat(tokenizer, list(c), add_generation_prompt=True), True) for c in conversations
        ]
        texts: list[str | None] = []
        for start in range(0, len(prompts), self.batch_size):
            texts += generate(
                model, tokenizer, prompts[start : start + self.batch_size], decoding, self.max_input_tokens
            ).texts
        return texts

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "local",
            "model": self.spec,
            "dtype": self.dtype,
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
        }


class HTTPChat(ChatBackend):
    """An OpenAI-compatible ``/chat/completions`` endpoint through :class:`~metalight.api.ChatClient`.

    Args:
        base_url: e.g. ``https://api.deepseek.com/v1`` or ``http://127.0.0.1:8000/v1``.
        model: the model name the endpoint expects.
        api_key_env: environment variable holding the API key (``null``: no key is sent).
        timeout_s: per-request timeout, seconds.
        max_retries: retries of a timed-out, rate-limited (429) or failed (5xx, malformed) request.
        backoff_s: first wait between retries, seconds (doubles each retry).
        max_concurrency: requests in flight.
        temperature: sampling temperature (upstream MetaConf's judge: 0.9).
        max_tokens: reply budget in tokens.
        cache_path: optional JSONL cache of answered requests (a restarted run does not pay twice).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_concurrency: int = 8,
        temperature: float = 0.0,
        max_tokens: int = 256,
        cache_path: str | None = None,
    ):
        endpoint = ChatEndpoint(
            base_url=base_url,
            model=model,
            api_key_env=api_key_env,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
            max_concurrency=max_concurrency,
            temperature=temperature,
            max_tokens=max_tokens,
        )
        self.client = ChatClient(
            endpoint, cache_path=cache_path, key_setting="model.init_args.judge.init_args.api_key_env"
        )
        self.last_errors: list[str] = []

    def complete_many(self, conversations: Sequence[Messages]) -> list[str | None]:
        """Replies in order, ``None`` for a failed request; ``last_errors`` keeps why (endpoint and
        status)."""
        results = self.client.complete_many(list(conversations))
        self.last_errors = [r.error or "no reply" for r in results if not r.ok]
        return [r.text if r.ok else None for r in results]

    def describe(self) -> dict[str, Any]:
        return {"backend": "http", **self.client.describe()}


# ---- MetaConf's reflection-quality judge -------------------------------------------------------------------
@dataclass(frozen=True)
class JudgeItem:
    """What the judge sees: the question, the model's answer and reflection, its confidence (0-10) and the
    reference correctness of the answer (0-1)."""

    question: str
    answer: str
    reflection: str
    confidence: float
    correctness: float


DIMENSIONS = ("consistency", "specificity", "plausibility")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.DOTALL)
_TOTAL = re.compile(r"total[_ ]score\"?\s*[:=]\s*([0-9]+(?:\.[0-9]+)?)", re.IGNORECASE)


def parse_judge_score(text: str | None) -> float | None:
    """The judge's total score (0-2) scaled to [0, 1], or ``None`` when the reply holds no usable score.

    Reads the last JSON object with ``total_score`` (or the mean of the three dimension scores when
    ``total_score`` is absent), else a bare ``total_score: x``; a value outside [0, 2] is unusable.
    """
    if not text:
        return None
    total = None
    for candidate in reversed(_JSON_OBJECT.findall(text)):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data.get("total_score"), (int, float)) and not isinstance(data["total_score"], bool):
            total = float(data["total_score"])
        elif all(isinstance(data.get(d), (int, float)) for d in DIMENSIONS):
            total = sum(float(data[d]) for d in DIMENSIONS) / len(DIMENSIONS)
        if total is not None:
            break
    if total is None and (match := _TOTAL.search(text)):
        total = float(match.group(1))
    return total / 2 if total is not None and 0 <= total <= 2 else None


def judge_messages(item: JudgeItem) -> Messages:
    """The judge conversation for one item (its fields inserted into the prompt)."""
    return [
        {
            "role": "user",
            "content": metaconf_judge_prompt(
                item.question, item.answer, item.reflection, item.confidence, item.correctness
            ),
        }
    ]


def judge_reflections(backend: ChatBackend, items: Sequence[JudgeItem]) -> list[float | None]:
    """Reflection-quality scores in [0, 1] (``None``: the request failed or the reply had no score)."""
    if not items:
        return []
    replies = backend.complete_many([judge_messages(item) for item in items])
    scores = [parse_judge_score(reply) for reply in replies]
    failed = sum(reply is None for reply in replies)
    unparsed = sum(s is None for s in scores) - failed
    if failed or unparsed:
        log.info(
            "reflection judge: %d of %d requests failed, %d replies had no score",
            failed,
            len(items),
            unparsed,
        )
    return scores
