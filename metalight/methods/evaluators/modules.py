"""Evaluation-only modules: the dual-prompt protocol with every confidence source, and ESMA's IDK protocol.

``python cli.py validate --config configs/eval/sources.yaml`` (any model, any QA DataModule) logs, beside
the base metrics, ``val/<source>/<metric>`` for each source and writes the threshold sweeps to
``report.json``; ``configs/eval/idk.yaml`` runs ESMA's evaluate_qa_idw; ``configs/eval/threshold.yaml``
ESMA's evaluate_qa_threshold (``python -m metalight.cli.evaluate threshold`` chooses on val, applies to test).
"""

from __future__ import annotations

import math
from typing import Any

from metalight.evaluation.dual_prompt import SampleResult
from metalight.evaluation.sources import (
    SourceContext,
    SourceName,
    check_idk_language,
    check_sources,
    compute_sources,
    is_abstention,
    local_responder,
)
from metalight.evaluation.summary import ScoredSample, attach_sources, load_thresholds, summarize_sources
from metalight.grading import exact_match, is_correct
from metalight.methods.base import DualPromptModule
from metalight.metrics.selective import Criterion
from metalight.models.chat import render_prompt
from metalight.models.generation import Decoding, Prompt, generate
from metalight.models.modes import eval_mode
from metalight.prompts import CONFIDENCE_PROMPT_VERSION, idk_prompt

ALL_LOCAL_SOURCES: list[SourceName] = [
    "p_yes",
    "meta",
    "idk",
    "max_seq_prob",
    "mean_token_entropy",
    "p_true",
    "verbalized",
]


class ConfidenceEvalModule(DualPromptModule):
    """Dual-prompt evaluation plus confidence sources, each scored against the direct answers' correctness.

    Every source (see :mod:`metalight.evaluation.sources`) logs ``<split>/<source>/<metric>`` (AUROC2, PRR,
    d'type2 of its yes-report, coverage, selective accuracy, ECE/Brier for probabilities) and a threshold:
    chosen on this split at validation, carried from validation to test (in one process, or from
    ``thresholds_from``), with its coverage, selective accuracy and d'type2. The sweep over quantile
    thresholds of every source goes to ``report.json`` under ``thresholds``.

    Args:
        sources: confidence sources to compute beside the dual prompt (default: all seven).
        threshold_criterion: what the chosen threshold maximises: ``youden`` (H − F, default: the ROC point
            farthest from chance), ``alignment`` (raw alignment, ESMA's measure; below 50% accuracy it
            prefers answering nothing) or ``dprime`` (with clipping, extreme thresholds can win).
        sweep_points: thresholds in each reported sweep (evenly spaced quantiles of the scores).
        thresholds_from: a validation report JSON whose thresholds the test split applies.
        (other args: see ``DualPromptModule``)
    """

    white_box = True  # local weights: every source is available

    def __init__(
        self,
        sources: list[SourceName] = ALL_LOCAL_SOURCES,
        threshold_criterion: Criterion = "youden",
        sweep_points: int = 21,
        thresholds_from: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.sources = check_sources(list(sources), white_box=self.white_box)
        if "idk" in self.sources:
            check_idk_language(self.eval_settings.language)
        self.threshold_criterion, self.sweep_points = threshold_criterion, sweep_points
        self.val_thresholds: dict[str, float] = load_thresholds(thresholds_from)

    def evaluate(self, records) -> list[ScoredSample]:
        """Dual-prompt results of ``records`` with every source's score attached."""
        results = super().evaluate(records)
        context = SourceContext(
            records,
            results,
            self.eval_settings,
            local_responder(self.model, self.tokenizer, self.eval_settings, self.synced_generation()),
            self.model,
            self.tokenizer,
        )
        with eval_mode(self.model):
            return attach_sources(results, compute_sources(self.sources, context))

    def extra_metrics(
        self, split: str, samples: list[SampleResult]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Per-source metrics; validation chooses the thresholds that test applies."""
        carried = self.val_thresholds if split == "test" else {}
        metrics, details, used = summarize_sources(
            samples,
            self.sources,
            split,
            self.hparams.dprime_correction,
            self.threshold_criterion,
            self.sweep_points,
            carried,
        )
        if split == "val":
            self.val_thresholds = used
        return metrics, details

    def report_settings(self) -> dict[str, Any]:
        return {
            **super().report_settings(),
            "confidence_sources": self.sources,
            "confidence_prompt_version": CONFIDENCE_PROMPT_VERSION,
            "threshold_criterion": self.threshold_criterion,
            "sweep_points": self.sweep_points,
        }


class IDKEvalModule(DualPromptModule):
    """ESMA's IDK evaluation (``scripts/evaluate_qa_idw.py``): one prompt that allows "I don't know".

    The model answers the IDK prompt once; an answer containing "i don't know" is an abstention. The answer
    is graded as usual, and the type-2 metrics take *answered* as the yes-report against the correctness
    of that same answer, as ESMA does. Samples hold the IDK prompt and answer in ``direct_prompt`` /
    ``direct_answer``. Besides the base metrics it logs ``answered_accuracy`` = P(correct | answered) and
    ``abstention_rate``. Note: an abstention is never correct, so the hit rate is 1 by construction and
    d'type2 is dominated by its correction; AUROC2 and the source table of ``ConfidenceEvalModule`` (IDK
    against the direct answer) are the comparable numbers.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        check_idk_language(self.eval_settings.language)

    def evaluate(self, records) -> list[ScoredSample]:
        """IDK-prompt answers of ``records``, graded, with answered as the yes-report."""
        settings = self.eval_settings
        prompts = [
            Prompt(
                *render_prompt(
                    self.tokenizer,
                    idk_prompt(r.question, settings.language, r.context),
                    settings.direct_chat_template,
                    settings.system_prompt,
                )
            )
            for r in records
        ]
        with eval_mode(self.model):
            out = generate(
                self.model,
                self.tokenizer,
                prompts,
                Decoding(settings.max_new_tokens, settings.decoding),
                settings.max_input_tokens,
                synced_gpus=self.synced_generation(),
                truncation_side=settings.truncation_side,
            )
        samples = []
        for record, prompt, answer in zip(records, prompts, out.texts):
            answered = not is_abstention(answer)
            samples.append(
                ScoredSample(
                    id=record.id,
                    question=record.question,
                    aliases=list(record.answers),
                    direct_prompt=prompt.text,
                    direct_answer=answer,
                    correct=is_correct(answer, record.answers, settings.grading),
                    exact_match=exact_match(answer, record.answers),
                    meta_prompt="",
                    meta_answer=None,
                    said_yes=answered,
                    meta_parsed=True,
                    p_yes=math.nan,
                    confidence={"idk": float(answered)},
                    reports={"idk": answered},
                )
            )
        return samples

    def extra_metrics(
        self, split: str, samples: list[SampleResult]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """``answered_accuracy`` = P(correct | answered) and ``abstention_rate``."""
        answered = [s for s in samples if s.said_yes]
        return {
            "answered_accuracy": sum(s.correct for s in answered) / len(answered) if answered else math.nan,
            "abstention_rate": 1 - len(answered) / len(samples) if samples else math.nan,
        }, {}

    def report_settings(self) -> dict[str, Any]:
        return {**super().report_settings(), "protocol": "idk"}
