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
has no confidence (left out of ECE / Brier / AUROC) and counts as "no". ``baselines`` adds upstream's direct,
chain-of-thought and self-refine prompts, measured the same way (``val/baseline_<name>_*``), and
``task_graders`` grades MetaConf's maths and long-form families
(:mod:`metalight.methods.metaconf.task_graders`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from metalight.data.records import RecordBatch
from metalight.errors import ConfigError
from metalight.grading import is_correct
from metalight.methods.grpo.module import GRPOModule
from metalight.methods.grpo.rollout import Rollout
from metalight.methods.metaconf.judge import ChatBackend
from metalight.methods.metaconf.rewards import (
    AccuracyMode,
    AccuracyOn,
    FormatRule,
    MetaConfScorer,
    ResponseFormat,
)
from metalight.methods.metaconf.task_graders import TaskGrader
from metalight.methods.metaconf.verbal import (
    BASELINES,
    BaselineName,
    ReplySettings,
    VerbalEvaluation,
    VerbalResult,
)
from metalight.methods.rewards import RewardFn
from metalight.prompts import (
    METACONF_BASELINE_VERSION,
    METACONF_PROMPT_VERSION,
    MetaConfPrompt,
    metaconf_prompt,
)


@dataclass
class MetaConfSample:
    """A validation sample: the dual-prompt result plus the verbal-confidence reply."""

    dual: Any
    verbal: VerbalResult
    baselines: dict[str, VerbalResult] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """One line of ``samples/<split>.jsonl``."""
        row = {
            **self.dual.to_json(),
            **{f"verbal_{k}": v for k, v in asdict(self.verbal).items() if k != "id"},
        }
        for name, result in self.baselines.items():
            row.update(
                {
                    f"baseline_{name}_{k}": v
                    for k, v in asdict(result).items()
                    if k not in ("id", "reflection")
                }
            )
        return row


class MetaConfModule(GRPOModule):
    """MetaConf stage 2: GRPO on answer + self-reflection + verbal confidence.

    Args:
        judge: reflection-quality judge: ``metalight.methods.metaconf.judge.LocalChat`` (a local model) or
            ``HTTPChat`` (an OpenAI-compatible endpoint; the API key comes from an environment variable).
            Needed when ``reflection_weight`` > 0.
        response_format: ``plain`` (upstream's ``Answer: / Self-reflection: / Confidence:``) or ``tagged``.
        prompt: ``instructed`` (metalight: an instruction and the reply format before the question) or
            ``bare`` (upstream: the question alone; stage 1 must be trained with the same prompt), for the
            rollouts and the verbal evaluation.
        format_rule: ``strict`` (all three fields needed) or ``upstream`` (a reflection or a non-zero
            confidence passes; a missing confidence reads as 0).
        accuracy: accuracy of the answer: ``alias`` match (``evaluation.grading`` rule), ``exact_match``, or
            ``token_f1`` (graded, in [0, 1]).
        accuracy_on: what accuracy grades, in rewards and evaluation: the parsed ``answer`` field (the whole
            completion when it has none), or the whole ``completion`` (upstream).
        task_graders: task family (a record's ``meta["task_type"]``: ``math``, ``long_fact``) -> grader
            (``metalight.methods.metaconf.task_graders.BoxedAnswerGrader``, ``StepJudgeGrader``,
            ``FactScoreGrader``), used instead of ``accuracy`` for those records, in rewards and evaluation.
        baselines: baseline prompts also evaluated at every validation (``direct``, ``cot``, ``self_refine``),
            reported as ``baseline_<name>_*``.
        calibration_weight: weight of 1 − (accuracy − confidence/10)².
        reflection_weight: weight of the judge's score in [0, 1].
        accuracy_weight: weight of the accuracy itself (logged as ``rewards/accuracy`` even at 0).
        missing_judge_score: reflection reward when the judge fails or its reply has no score (upstream: 0).
        confidence_threshold: said_yes = confidence/10 ≥ this, for the verbal type-2 metrics.
        verbal_max_new_tokens: reply budget of the verbal-confidence evaluation, in tokens.
        rewards: extra reward functions (name or dotted path -> weight) added to MetaConf's.
        (other args: see ``GRPOModule``)
    """

    def __init__(
        self,
        judge: ChatBackend | None = None,
        response_format: ResponseFormat = "plain",
        format_rule: FormatRule = "strict",
        accuracy: AccuracyMode = "alias",
        prompt: MetaConfPrompt = "instructed",
        accuracy_on: AccuracyOn = "answer",
        calibration_weight: float = 1.0,
        reflection_weight: float = 0.6,
        accuracy_weight: float = 0.0,
        missing_judge_score: float = 0.0,
        confidence_threshold: float = 0.5,
        verbal_max_new_tokens: int = 256,
        task_graders: dict[str, TaskGrader] | None = None,
        baselines: list[BaselineName] | None = None,
        rewards: dict[str, float] | None = None,
        **kwargs,
    ):
        super().__init__(rewards=rewards or {}, **kwargs)
        if unknown := [b for b in baselines or [] if b not in BASELINES]:
            raise ConfigError(f"MetaConfModule: unknown baselines {unknown}; choose from {list(BASELINES)}")
        if reflection_weight != 0 and judge is None:
            raise ConfigError(
                "MetaConfModule: reflection_weight > 0 needs a `judge:` (class_path "
                "metalight.methods.metaconf.judge.LocalChat or HTTPChat); or set reflection_weight: 0"
            )
        self.hparams["judge"] = judge.describe() if judge is not None else None
        self.hparams["task_graders"] = {k: g.describe() for k, g in (task_graders or {}).items()}
        self.hparams["baselines"] = list(baselines or [])
        self.scorer = MetaConfScorer(
            response_format,
            format_rule,
            accuracy,
            self.eval_settings.grading,
            judge,
            missing_judge_score,
            dict(task_graders or {}),
            accuracy_on,
        )
        self.verbal = VerbalEvaluation(
            self.hparams.baselines, response_format, confidence_threshold, self.hparams.dprime_correction
        )

    def prompt_text(self, record) -> str:
        return metaconf_prompt(
            record.question, self.hparams.response_format, record.context, self.hparams.prompt
        )

    def reward_table(self) -> dict[str, RewardFn]:
        """MetaConf's own rewards (the scorer's ``format``, ``accuracy``, ``calibration``, ``reflection``)."""
        return self.scorer.rewards()

    def build_rewards(self) -> list[tuple[str, RewardFn, float]]:
        """MetaConf's rewards with their weights (``format`` is logged, weight 0), then the configured extra
        ones."""
        h, table = self.hparams, self.reward_table()
        weights = {
            "format": 0.0,
            "calibration": h.calibration_weight,
            "accuracy": h.accuracy_weight,
            "reflection": h.reflection_weight,
        }
        return [
            (name, table[name], weights[name]) for name in weights if name in table
        ] + super().build_rewards()

    def score(self, rollout: Rollout):
        names, table = super().score(rollout)
        self.log_train(self.scorer.stats)
        return names, table

    # ---- evaluation: the core protocol plus the verbal confidence (and baselines) --------------------------
    def grade(self, records: Sequence[Any], answers: Sequence[str]) -> list[bool]:
        """Correctness of answers: task grade ≥ 0.5 for records of a graded task family, else the alias
        rule."""
        grades = self.scorer.task_grades(records, answers)
        return [
            (grades[i] or 0.0) >= 0.5 if i in grades else is_correct(a, r.answers, self.eval_settings.grading)
            for i, (r, a) in enumerate(zip(records, answers))
        ]

    def evaluate_batch(self, batch: RecordBatch, split: str) -> None:
        """The dual-prompt evaluation of the batch, then its verbal-confidence replies (and baselines)."""
        super().evaluate_batch(batch, split)
        h = self.hparams
        settings = ReplySettings(
            h.chat_template,
            h.system_prompt,
            h.verbal_max_new_tokens,
            h.max_prompt_length,
            self.synced_generation(),
            h.prompt,
            h.accuracy_on,
        )
        with self.generation_context():
            self.verbal.step(
                self.model, self.tokenizer, batch.records, batch.padding, split, self.grade, settings
            )

    def finish_evaluation(self, split: str):
        """The dual-prompt outcome with the verbal metrics added and each sample joined with its replies."""
        verbal, replies = self.verbal.finish(split)  # every pass resets, the sanity check's too
        outcome = super().finish_evaluation(split)
        if outcome is None:
            return None
        outcome.metrics.update(verbal)
        outcome.samples = [
            MetaConfSample(d, v, {kind: replies[kind][i] for kind in self.hparams.baselines})
            for i, (d, v) in enumerate(zip(outcome.samples, replies["verbal"]))
        ]
        return outcome

    def report_settings(self) -> dict[str, Any]:
        h = self.hparams
        return {
            **super().report_settings(),
            "metaconf_prompt_version": METACONF_PROMPT_VERSION,
            "metaconf_baseline_version": METACONF_BASELINE_VERSION if h.baselines else None,
            "baselines": h.baselines,
            "task_graders": h.task_graders,
            "response_format": h.response_format,
            "metaconf_prompt": h.prompt,
            "format_rule": h.format_rule,
            "accuracy_mode": h.accuracy,
            "accuracy_on": h.accuracy_on,
            "confidence_threshold": h.confidence_threshold,
            "judge": h.judge,
            "reward_weights": {
                "calibration": h.calibration_weight,
                "reflection": h.reflection_weight,
                "accuracy": h.accuracy_weight,
            },
        }
