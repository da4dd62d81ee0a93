"""API models (ESMA's ``scripts/evaluate_qa_api.py``): the dual-prompt protocol against any OpenAI-compatible
chat endpoint, through :class:`metalight.api.chat_client.ChatClient` (retries with backoff, a concurrency
limit, and a response cache so a re-run resumes without paying again for answered prompts).

The direct and meta prompts go out as single user messages (plus the optional system prompt), as ESMA
does; the text-only confidence sources (``meta``, ``idk``, ``verbalized``) work the same way. The API key is
read from the environment variable named in ``endpoint.api_key_env`` and is never logged or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from metalight.api.chat_client import ChatClient, ChatEndpoint
from metalight.api.transport import require_key
from metalight.data.records import RecordBatch
from metalight.errors import MetalightError
from metalight.evaluation.dual_prompt import EvalSettings, SampleResult
from metalight.evaluation.sources import Messages, SourceContext, TextSourceName, compute_sources
from metalight.evaluation.summary import ScoredSample, attach_sources
from metalight.grading import exact_match, is_correct, parse_meta_answer, suspect_match
from metalight.methods.evaluation import gather_objects
from metalight.methods.evaluators.modules import ConfidenceEvalModule
from metalight.metrics.selective import Criterion
from metalight.prompts import direct_prompt, meta_prompt

KEY_SETTING = "model.init_args.endpoint.api_key_env"
# EvalSettings fields that only concern local generation; an API report leaves them out.
LOCAL_ONLY = (
    "dtype",
    "direct_chat_template",
    "meta_chat_template",
    "meta_readout",
    "max_new_tokens",
    "max_input_tokens",
    "truncation_side",
    "decoding",
)


class APIError(MetalightError):
    """API requests failed even after retries; the message says how to resume."""


@dataclass(frozen=True)
class TokenPrices:
    """Prices of the endpoint's tokens, in US dollars per million tokens (reasoning tokens are billed as
    completion tokens, as OpenAI does)."""

    input_per_million: float
    output_per_million: float

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Estimated cost in US dollars."""
        return (prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million) / 1e6


class APIEvalModule(ConfidenceEvalModule):
    """Measure a model behind an OpenAI-compatible chat endpoint with the dual-prompt protocol.

    Per question: the direct prompt's reply is graded, the meta prompt's reply parsed as yes/no (no P(yes):
    an API returns text). Text confidence sources add their own requests. A request that still fails after
    the client's retries stops the evaluation (``on_failure: error``; answered prompts stay cached, so the
    same command resumes) or leaves that question out of every metric (``skip``; counted as ``api_failed``).

    Args:
        endpoint: base URL, model name, the *name* of the environment variable holding the key, timeout,
            retries, backoff, concurrency, temperature and ``max_tokens`` (the budget of every reply).
        cache_path: JSONL response cache shared by runs (``None``: no cache).
        sources: text-only confidence sources: ``meta``, ``idk``, ``verbalized``.
        on_failure: ``error`` (stop, resume by re-running) or ``skip`` (leave the question out, count it).
        evaluation: grading, yes/no rule, language, system prompt (the local-generation fields are unused).
        dprime_correction: see ``DualPromptModule``.
        threshold_criterion: see ``ConfidenceEvalModule``.
        sweep_points: see ``ConfidenceEvalModule``.
        thresholds_from: see ``ConfidenceEvalModule``.
        prices: US dollars per million input / output tokens; when set, the report estimates the cost of the
            tokens this run was billed for (``api_cost_usd``).
    """

    white_box = False

    def __init__(
        self,
        endpoint: ChatEndpoint,
        cache_path: str | None = "runs/api_cache/responses.jsonl",
        # The list default is what LightningCLI shows; the base copies it (list(sources)), never mutates it.
        sources: list[TextSourceName] = ["meta"],  # noqa: B006
        on_failure: Literal["error", "skip"] = "error",
        evaluation: EvalSettings | None = None,
        dprime_correction: Literal["clip", "loglinear"] = "clip",
        threshold_criterion: Criterion = "youden",
        sweep_points: int = 21,
        thresholds_from: str | None = None,
        prices: TokenPrices | None = None,
    ):
        super().__init__(
            sources=sources,
            threshold_criterion=threshold_criterion,
            sweep_points=sweep_points,
            thresholds_from=thresholds_from,
            model=f"api:{endpoint.model}",
            evaluation=evaluation,
            dprime_correction=dprime_correction,
        )
        self.endpoint = self.record_settings("endpoint", endpoint, ChatEndpoint)
        require_key(self.endpoint.api_key_env, KEY_SETTING)  # now, before config.yaml is written
        self.cache_path, self.on_failure = cache_path, on_failure
        self.prices = self.record_settings("prices", prices, TokenPrices)
        self.client: ChatClient | None = None
        self._failed = {"val": 0, "test": 0}
        self._usage_counted = {"prompt_tokens": 0, "completion_tokens": 0, "reasoning_tokens": 0}

    def configure_model(self) -> None:
        """Create the client (and load the response cache) once; there are no weights."""
        if self.client is None:
            self.client = ChatClient(self.endpoint, self.cache_path, key_setting=KEY_SETTING)

    def _with_system(self, messages: Messages) -> Messages:
        system = self.eval_settings.system_prompt
        return ([{"role": "system", "content": system}] if system else []) + messages

    def evaluate(self, records) -> list[ScoredSample]:
        """Direct and meta replies for ``records`` (one concurrent batch of requests), then the sources;
        a row whose requests failed carries ``extras["api_error"]``."""
        settings, n = self.eval_settings, len(records)
        direct = [direct_prompt(r.question, settings.language, r.context) for r in records]
        meta = [meta_prompt(r.question, settings.language, r.context) for r in records]
        replies = self.client.complete_many(
            [self._with_system([{"role": "user", "content": text}]) for text in direct + meta]
        )
        errors = [d.error or m.error for d, m in zip(replies[:n], replies[n:])]
        results = []
        for record, d_text, m_text, d, m in zip(records, direct, meta, replies[:n], replies[n:]):
            answer, meta_answer = d.text or "", m.text or ""
            decision = parse_meta_answer(meta_answer, settings.yes_no_rule, settings.language)
            results.append(
                SampleResult(
                    id=record.id,
                    question=record.question,
                    aliases=list(record.answers),
                    direct_prompt=d_text,
                    direct_answer=answer,
                    correct=is_correct(answer, record.answers, settings.grading),
                    exact_match=exact_match(answer, record.answers),
                    meta_prompt=m_text,
                    meta_answer=meta_answer,
                    said_yes=decision.said_yes,
                    meta_parsed=decision.parsed,
                    p_yes=math.nan,
                    suspect_match=settings.grading == "esma" and suspect_match(answer, record.answers),
                )
            )

        def respond(conversations, max_new_tokens: int) -> list[str | None]:
            # Every reply shares the endpoint's max_tokens (part of the cache key), so the budget is unused.
            out = self.client.complete_many([self._with_system(c) for c in conversations])
            for row, result in enumerate(out):
                errors[row] = errors[row] or result.error
            return [r.text if r.ok else None for r in out]

        samples = attach_sources(
            results, compute_sources(self.sources, SourceContext(records, results, settings, respond))
        )
        for sample, error in zip(samples, errors):
            if error:
                sample.extras["api_error"] = error
        return samples

    def evaluate_batch(self, batch: RecordBatch, split: str) -> None:
        """Answer the batch; a question whose requests failed stops the run (``on_failure: error``) or is left
        out and counted (``skip``)."""
        results = self.evaluate(batch.records)
        failed = [r.extras.get("api_error") is not None and not pad for r, pad in zip(results, batch.padding)]
        if any(failed) and self.on_failure == "error":
            last = next(r.extras["api_error"] for r, f in zip(results, failed) if f)
            raise APIError(
                f"{sum(failed)} of {len(failed)} questions in this batch got no API reply (last error: "
                f"{last}); replies received so far are cached in {self.cache_path}: re-run the same "
                f"command to resume, or set model.init_args.on_failure: skip to leave such questions out"
            )
        self._failed[split] += sum(failed)
        self.evaluation.record(
            split, results, keep=[not pad and not f for pad, f in zip(batch.padding, failed)]
        )

    def extra_metrics(
        self, split: str, samples: list[SampleResult]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """The sources' metrics, the count of failed questions and the tokens (and cost) of the split."""
        metrics, details = super().extra_metrics(split, samples)
        metrics["api_failed"] = float(sum(gather_objects([self._failed[split]])))
        self._failed[split] = 0
        metrics.update(self._usage_since_last_summary())
        if self.client is not None:  # counted over the whole run (a cache problem is not per split)
            metrics.update({f"api_{k}": float(v) for k, v in self.client.counts.items()})
        return metrics, details

    def _usage_since_last_summary(self) -> dict[str, float]:
        """Tokens the endpoint reported for this split's requests (summed over ranks), and their cost."""
        usage = self.client.usage if self.client is not None else dict(self._usage_counted)
        mine = {k: usage[k] - self._usage_counted[k] for k in usage}
        self._usage_counted = dict(usage)
        ranks = gather_objects([mine])
        total = {k: sum(r[k] for r in ranks) for k in mine}
        out = {f"api_{k}": float(v) for k, v in total.items()}
        if self.prices is not None:
            out["api_cost_usd"] = self.prices.cost(total["prompt_tokens"], total["completion_tokens"])
        return out

    def report_settings(self) -> dict[str, Any]:
        settings = {
            k: v
            for k, v in super().report_settings().items()
            if k not in LOCAL_ONLY and not k.endswith("_chat_template_used")
        }
        return {
            **settings,
            "endpoint": self.hparams.endpoint,
            "cache_path": self.cache_path,
            "on_failure": self.on_failure,
            "prices": self.hparams.prices,
        }
