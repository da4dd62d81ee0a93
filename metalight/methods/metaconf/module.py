"""MetaConf ("Learning Explainable Confidence via Metacognitive Reflection", Lixingming18/Metaconf) on GRPO.

The model answers, reflects on its answer in the first person, and states a confidence from 0 to 10. Stage 2
of the paper (this module) trains it with GRPO on

    reward = 1.0 · (1 − (accuracy − confidence/10)²) + 0.6 · judge(reflection) ∈ [0, 1],

both terms zeroed when the response is malformed (see :mod:`metalight.methods.metaconf.rewards`). Stage 1 is
SFT on answer + reflection + confidence targets (:mod:`metalight.methods.metaconf.stage1_data`).

Every validation measures the model twice: the core dual-prompt protocol (``val/*``, as every method), and
the verbal confidence of a MetaConf-format reply (``val/verbal_*``): ECE, Brier and AUROC of confidence/10
against the correctness of the answer field, and the type-2 table with said_yes = confidence/10 ≥
``confidence_threshold``. A reply without a usable confidence is counted (``val/verbal_meta_unparsed_rate``),
has no confidence (left out of ECE / Brier / AUROC) and counts as "no".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from metalight.data.records import RecordBatch
from metalight.errors import ConfigError
from metalight.grading import GradingMode, is_correct
from metalight.methods.base import EVAL_SPLITS, gather_objects
from metalight.methods.grpo.module import GRPOModule
from metalight.methods.grpo.rollout import Rollout
from metalight.methods.metaconf.judge import ChatBackend
from metalight.methods.metaconf.rewards import (
    AccuracyMode,
    FormatRule,
    MetaConfScorer,
    ResponseFormat,
    parse_response,
)
from metalight.methods.rewards import RewardFn
from metalight.metrics import MetacognitionMetrics
from metalight.models.chat import ChatMode, render_prompt
from metalight.models.generation import Decoding, Prompt, generate
from metalight.prompts import METACONF_PROMPT_VERSION, metaconf_prompt


@dataclass
class VerbalResult:
    """One question answered in the MetaConf format and graded (``confidence`` on 0-10, ``None`` if unusable)."""

    id: str
    prompt: str
    completion: str
    answer: str | None
    reflection: str | None
    confidence: float | None
    correct: bool
    parsed: bool


@torch.no_grad()
def evaluate_verbal(model, tokenizer, records: Sequence[Any], response_format: ResponseFormat = "plain",
                    chat_template: ChatMode = "auto", system_prompt: str | None = None, grading: GradingMode = "esma",
                    max_new_tokens: int = 256, max_input_tokens: int = 512,
                    synced_gpus: bool = False) -> list[VerbalResult]:
    """Greedy MetaConf-format replies to ``records``, parsed and graded (the answer field, or the whole reply
    when it has none, against the aliases)."""
    prompts = [Prompt(*render_prompt(tokenizer, metaconf_prompt(r.question, response_format, r.context),
                                     chat_template, system_prompt)) for r in records]
    texts = generate(model, tokenizer, prompts, Decoding(max_new_tokens=max_new_tokens), max_input_tokens,
                     synced_gpus=synced_gpus).texts
    results = []
    for record, prompt, text in zip(records, prompts, texts):
        parsed = parse_response(text, response_format)
        answer = parsed.answer if parsed.answer is not None else text
        results.append(VerbalResult(record.id, prompt.text, text, parsed.answer, parsed.reflection, parsed.confidence,
                                    is_correct(answer, record.answers, grading), parsed.format_ok))
    return results


def verbal_tensors(results: Sequence[VerbalResult], threshold: float = 0.5) -> dict[str, torch.Tensor]:
    """Metric inputs: confidence/10 (NaN when undefined), said_yes = confidence/10 ≥ ``threshold``."""
    confidence = torch.tensor([r.confidence / 10 if r.confidence is not None else float("nan") for r in results])
    return {"correct": torch.tensor([r.correct for r in results], dtype=torch.bool),
            "said_yes": torch.nan_to_num(confidence, nan=-1.0) >= threshold,
            "confidence": confidence.float(), "parsed": torch.tensor([r.parsed for r in results], dtype=torch.bool)}


@dataclass
class MetaConfSample:
    """A validation sample: the dual-prompt result plus the verbal-confidence reply."""

    dual: Any
    verbal: VerbalResult

    def to_json(self) -> dict[str, Any]:
        """One line of ``samples/<split>.jsonl``."""
        return {**self.dual.to_json(), **{f"verbal_{k}": v for k, v in asdict(self.verbal).items() if k != "id"}}


class MetaConfModule(GRPOModule):
    """MetaConf stage 2: GRPO on answer + self-reflection + verbal confidence.

    Args:
        judge: reflection-quality judge: ``metalight.methods.metaconf.judge.LocalChat`` (a local model) or ``HTTPChat``
            (an OpenAI-compatible endpoint; the API key comes from an environment variable). Needed when
            ``reflection_weight`` > 0.
        response_format: ``plain`` (upstream's ``Answer: / Self-reflection: / Confidence:``) or ``tagged``.
        format_rule: ``strict`` (all three fields needed) or ``upstream`` (a reflection or a non-zero
            confidence passes; a missing confidence reads as 0).
        accuracy: accuracy of the answer: ``alias`` match (``evaluation.grading`` rule), ``exact_match``, or
            ``token_f1`` (graded, in [0, 1]).
        calibration_weight: weight of 1 − (accuracy − confidence/10)².
        reflection_weight: weight of the judge's score in [0, 1].
        accuracy_weight: weight of the accuracy itself (logged as ``rewards/accuracy`` even at 0).
        missing_judge_score: reflection reward when the judge fails or its reply has no score (upstream: 0).
        confidence_threshold: said_yes = confidence/10 ≥ this, for the verbal type-2 metrics.
        verbal_max_new_tokens: reply budget of the verbal-confidence evaluation, in tokens.
        rewards: extra reward functions (name or dotted path -> weight) added to MetaConf's.
        (other args: see ``GRPOModule``)
    """

    def __init__(self, judge: ChatBackend | None = None, response_format: ResponseFormat = "plain",
                 format_rule: FormatRule = "strict", accuracy: AccuracyMode = "alias",
                 calibration_weight: float = 1.0, reflection_weight: float = 0.6, accuracy_weight: float = 0.0,
                 missing_judge_score: float = 0.0, confidence_threshold: float = 0.5,
                 verbal_max_new_tokens: int = 256, rewards: dict[str, float] | None = None, **kwargs):
        super().__init__(rewards=rewards or {}, **kwargs)
        if reflection_weight != 0 and judge is None:
            raise ConfigError("MetaConfModule: reflection_weight > 0 needs a `judge:` (class_path "
                              "metalight.methods.metaconf.judge.LocalChat or HTTPChat); or set reflection_weight: 0")
        self.hparams["judge"] = judge.describe() if judge is not None else None
        self.scorer = MetaConfScorer(response_format, format_rule, accuracy, self.eval_settings.grading, judge,
                                     missing_judge_score)
        self.verbal_metrics = nn.ModuleDict({split: MetacognitionMetrics(dprime_correction=self.hparams.dprime_correction)
                                             for split in EVAL_SPLITS})
        self._verbal_samples: dict[str, list[VerbalResult]] = {split: [] for split in EVAL_SPLITS}

    def prompt_text(self, record) -> str:
        return metaconf_prompt(record.question, self.hparams.response_format, record.context)

    def build_rewards(self) -> list[tuple[str, RewardFn, float]]:
        h, s = self.hparams, self.scorer
        own = [("format", s.format, 0.0), ("calibration", s.calibration, h.calibration_weight),
               ("accuracy", s.accuracy, h.accuracy_weight)]
        if s.judge is not None:
            own.append(("reflection", s.reflection, h.reflection_weight))
        return own + super().build_rewards()

    def score(self, rollout: Rollout):
        names, table = super().score(rollout)
        self.log_train(self.scorer.stats)
        return names, table

    # ---- evaluation: the core protocol plus the verbal confidence -------------------------------------------
    def _evaluation_step(self, batch: RecordBatch, split: str) -> None:
        super()._evaluation_step(batch, split)
        h, was_training = self.hparams, self.model.training
        self.model.eval()
        try:
            with self.generation_context():
                verbal = evaluate_verbal(self.model, self.tokenizer, batch.records, h.response_format,
                                         h.chat_template, h.system_prompt, self.eval_settings.grading,
                                         h.verbal_max_new_tokens, h.max_prompt_length, self.synced_generation())
        finally:
            self.model.train(was_training)
        keep = torch.tensor([not pad for pad in batch.padding], dtype=torch.bool, device=self.device)
        tensors = {k: v.to(self.device) for k, v in verbal_tensors(verbal, h.confidence_threshold).items()}
        self.verbal_metrics[split].update(**tensors, mask=keep)
        self._verbal_samples[split].extend(v for v, pad in zip(verbal, batch.padding) if not pad)

    def _finish_evaluation(self, split: str) -> None:
        metric = self.verbal_metrics[split]
        verbal = {f"verbal_{k}": float(v) for k, v in metric.compute().items() if k != "n"}
        metric.reset()
        verbal_samples = gather_objects(self._verbal_samples[split])
        self._verbal_samples[split] = []
        super()._finish_evaluation(split)
        if self.trainer.sanity_checking or split not in self.eval_outcomes:
            return
        self.log_dict({f"{split}/{k}": v for k, v in verbal.items()}, sync_dist=True)
        outcome = self.eval_outcomes[split]
        outcome.metrics.update(verbal)
        outcome.samples = [MetaConfSample(d, v) for d, v in zip(outcome.samples, verbal_samples)]

    def report_settings(self) -> dict[str, Any]:
        h = self.hparams
        return {**super().report_settings(), "metaconf_prompt_version": METACONF_PROMPT_VERSION,
                "response_format": h.response_format, "format_rule": h.format_rule, "accuracy_mode": h.accuracy,
                "confidence_threshold": h.confidence_threshold, "judge": h.judge,
                "reward_weights": {"calibration": h.calibration_weight, "reflection": h.reflection_weight,
                                   "accuracy": h.accuracy_weight}}
