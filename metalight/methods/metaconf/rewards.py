"""MetaConf responses: parse ``Answer / Self-reflection / Confidence`` (or tagged sections) and score them.

Upstream (``utils/utils.py::parse_response``) reads the text between the markers and a confidence at the very
end, falling back to the whole response, an empty reflection and confidence 0. Here a missing or malformed
field is ``None`` instead, so it can be counted: the parser accepts markdown emphasis (``**Confidence:** 7``),
``7/10``, ``70%`` and trailing text after the number; a confidence outside [0, 10] is malformed.

Rewards (``utils/reward_function.py::calculate_reward``), per completion:
  * format: ``strict`` (default) 1 when answer, reflection and confidence are all present, else 0;
    ``upstream`` ([reflection non-empty] + [confidence present and ≠ 0]) / 2, with a missing confidence read
    as 0;
  * calibration = 1 − (accuracy − confidence/10)², 0 when the format reward is 0;
  * reflection = the judge's score in [0, 1], 0 when the format reward is 0;
  * accuracy of the answer: alias match (default), exact match, or token F1 (a graded score in [0, 1]); a
    record whose ``meta["task_type"]`` has a task grader (``task_graders``, e.g. ``math`` → boxed equivalence,
    ``long_fact`` → FActScore) is graded by it instead. ``accuracy_on`` says what is graded: the ``answer``
    field (default; the whole completion when it has none) or the whole ``completion`` (upstream's
    ``calculate_accuracy(..., model_responses, ...)``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from metalight.errors import ConfigError
from metalight.grading import GradingMode, exact_match, is_correct
from metalight.methods.metaconf.judge import ChatBackend, JudgeItem, judge_reflections
from metalight.methods.metaconf.task_graders import TaskGrader
from metalight.methods.rewards import RewardFn, token_f1

ResponseFormat = Literal["plain", "tagged"]
FormatRule = Literal["strict", "upstream"]
AccuracyMode = Literal["alias", "exact_match", "token_f1"]
AccuracyOn = Literal["answer", "completion"]

_EMPHASIS = r"[\s*_]*"
_NUMBER = r"(\d+(?:\.\d+)?)\s*(%|/\s*10(?!\d)|out of 10)?"
_PLAIN = {
    "answer": re.compile(rf"\banswer{_EMPHASIS}:{_EMPHASIS}", re.IGNORECASE),
    "reflection": re.compile(rf"\b(?:self[\s-]*)?reflection{_EMPHASIS}:{_EMPHASIS}", re.IGNORECASE),
    "confidence": re.compile(rf"\bconfidence(?:\s+(?:level|score))?{_EMPHASIS}:{_EMPHASIS}", re.IGNORECASE),
}
_CONFIDENCE_VALUE = re.compile(rf"^{_NUMBER}")
_TAGGED = {
    "answer": re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL),
    "reflection": re.compile(
        r"<(?:self[-_ ]?)?reflection>(.*?)</(?:self[-_ ]?)?reflection>", re.IGNORECASE | re.DOTALL
    ),
    "confidence": re.compile(rf"<confidence>\s*{_NUMBER}\s*</confidence>", re.IGNORECASE),
}


@dataclass(frozen=True)
class MetaConfResponse:
    """A parsed response: ``answer``, ``reflection`` (text or ``None`` when missing) and ``confidence`` on the
    0-10 scale (``None`` when missing, unparsable or outside [0, 10])."""

    answer: str | None
    reflection: str | None
    confidence: float | None

    @property
    def format_ok(self) -> bool:
        """All three fields are present and non-empty."""
        return bool(self.answer) and bool(self.reflection) and self.confidence is not None


def _clean(text: str) -> str:
    return text.strip().strip("*_").strip()


def _confidence(number: str, unit: str | None) -> float | None:
    value = float(number) / (10.0 if unit == "%" else 1.0)
    return value if 0.0 <= value <= 10.0 else None


def parse_response(text: str, response_format: ResponseFormat = "plain") -> MetaConfResponse:
    """Read a MetaConf completion; see the module docstring for what is accepted."""
    if response_format == "tagged":
        answer, reflection = _TAGGED["answer"].search(text), _TAGGED["reflection"].search(text)
        confidence = _TAGGED["confidence"].search(text)
        return MetaConfResponse(
            _clean(answer.group(1)) or None if answer else None,
            _clean(reflection.group(1)) or None if reflection else None,
            _confidence(*confidence.groups()) if confidence else None,
        )
    answer_mark = _PLAIN["answer"].search(text)
    after_answer = answer_mark.end() if answer_mark else 0
    reflection_mark = _PLAIN["reflection"].search(text, after_answer)
    after_reflection = reflection_mark.end() if reflection_mark else after_answer
    confidence_marks = list(_PLAIN["confidence"].finditer(text, after_reflection))
    confidence_mark = confidence_marks[-1] if confidence_marks else None
    end_of_answer = reflection_mark or confidence_mark
    answer = (
        _clean(text[after_answer : end_of_answer.start() if end_of_answer else len(text)])
        if answer_mark
        else None
    )
    reflection = None
    if reflection_mark:
        reflection = _clean(
            text[after_reflection : confidence_mark.start() if confidence_mark else len(text)]
        )
    confidence = None
    if confidence_mark and (value := _CONFIDENCE_VALUE.match(text[confidence_mark.end() :])):
        confidence = _confidence(*value.groups())
    return MetaConfResponse(answer or None, reflection or None, confidence)


def graded_text(response: MetaConfResponse, completion: str, accuracy_on: AccuracyOn = "answer") -> str:
    """What accuracy is computed on: the answer field (the whole completion when it has none), or with
    ``accuracy_on="completion"`` the whole completion, as upstream."""
    if accuracy_on == "completion" or response.answer is None:
        return completion
    return response.answer


def format_response(
    answer: str, reflection: str, confidence: float, response_format: ResponseFormat = "plain"
) -> str:
    """Write a response in the format the parser reads (stage-1 SFT targets)."""
    value = f"{confidence:g}"
    if response_format == "tagged":
        return (
            f"<answer>{answer}</answer>\n<reflection>{reflection}</reflection>\n"
            f"<confidence>{value}</confidence>"
        )
    return f"Answer: {answer}\nSelf-reflection: {reflection}\nConfidence: {value}"


@dataclass
class MetaConfScorer:
    """MetaConf's reward functions over one rollout, each ``f(prompts, completions, records) -> Tensor[R]``.

    ``judge`` scores reflections (``None``: the reflection reward cannot be used); a judge failure or an
    unparsable judge reply counts as missing and scores ``missing_judge_score``. ``stats`` holds the counts of
    the last call (judge requests and missing scores, undefined confidences).
    """

    response_format: ResponseFormat = "plain"
    format_rule: FormatRule = "strict"
    accuracy_mode: AccuracyMode = "alias"
    grading: GradingMode = "esma"
    judge: ChatBackend | None = None
    missing_judge_score: float = 0.0
    task_graders: dict[str, TaskGrader] = field(default_factory=dict)
    accuracy_on: AccuracyOn = "answer"
    stats: dict[str, float] = field(default_factory=dict)
    _last_grades: tuple[Any, list[float]] | None = field(default=None, init=False, repr=False)

    def parse(self, completions: Sequence[str]) -> list[MetaConfResponse]:
        """Parsed completions; records how many have no usable confidence."""
        parsed = [parse_response(c, self.response_format) for c in completions]
        self.stats["confidence_undefined_rate"] = sum(p.confidence is None for p in parsed) / max(
            1, len(parsed)
        )
        return parsed

    def answer_accuracy(self, response: MetaConfResponse, completion: str, record: Any) -> float:
        """Accuracy in [0, 1] of the graded text (:func:`graded_text`)."""
        answer = graded_text(response, completion, self.accuracy_on)
        if self.accuracy_mode == "exact_match":
            return float(exact_match(answer, record.answers))
        if self.accuracy_mode == "token_f1":
            return token_f1(answer, record.answers)
        return float(is_correct(answer, record.answers, self.grading))

    def task_grades(self, records: Sequence[Any], answers: Sequence[str]) -> dict[int, float | None]:
        """Grades of the records whose ``meta["task_type"]`` has a task grader, by position (``None``: the
        grader's judge failed); counts them in ``stats`` (``grader/requests``, ``grader/missing``)."""
        for record in records:
            if not record.answers and record.meta.get("task_type") not in self.task_graders:
                raise ConfigError(
                    f"record {record.id} (task_type {record.meta.get('task_type')!r}) has no gold "
                    f"answer, so only a task grader can grade it; set model.init_args.task_graders."
                    f"{record.meta.get('task_type') or '<task_type>'} (e.g. FactScoreGrader)"
                )
        grades: dict[int, float | None] = {}
        for task, grader in self.task_graders.items():
            positions = [i for i, r in enumerate(records) if r.meta.get("task_type") == task]
            if positions:
                graded = grader.grade([records[i] for i in positions], [answers[i] for i in positions])
                grades.update(zip(positions, graded))
        missing = sum(g is None for g in grades.values())
        self.stats.update({"grader/requests": float(len(grades)), "grader/missing": float(missing)})
        return grades

    def accuracies(
        self, parsed: Sequence[MetaConfResponse], completions: Sequence[str], records: Sequence[Any]
    ) -> list[float]:
        """Accuracy in [0, 1] per completion: the task grader's (a missing grade scores 0, as upstream's
        ``except: 0``) or :meth:`answer_accuracy`. Computed once per batch of completions (every reward reads
        it)."""
        key = (tuple(r.id for r in records), tuple(completions))
        if self._last_grades is not None and self._last_grades[0] == key:
            return self._last_grades[1]
        answers = [graded_text(p, c, self.accuracy_on) for p, c in zip(parsed, completions)]
        graded = self.task_grades(records, answers)
        values = [
            (graded[i] or 0.0) if i in graded else self.answer_accuracy(p, c, r)
            for i, (p, c, r) in enumerate(zip(parsed, completions, records))
        ]
        self._last_grades = (key, values)
        return values

    def _format_scores(self, parsed: Sequence[MetaConfResponse]) -> list[float]:
        if self.format_rule == "upstream":
            return [(bool(p.reflection) + bool(p.confidence)) / 2 for p in parsed]
        return [float(p.format_ok) for p in parsed]

    def rewards(self) -> dict[str, RewardFn]:
        """MetaConf's rewards by name (the module weights them): ``format``, ``accuracy``, ``calibration``
        and, with a judge, ``reflection``."""
        own = {"format": self.format, "accuracy": self.accuracy, "calibration": self.calibration}
        return own | ({"reflection": self.reflection} if self.judge is not None else {})

    def format(self, prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]) -> Tensor:
        """The format reward (see module docstring); calibration and reflection are gated on it."""
        return torch.tensor(self._format_scores(self.parse(completions)))

    def accuracy(self, prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]) -> Tensor:
        """Accuracy of the graded text (the answer field, or the whole completion: ``accuracy_on``)."""
        return torch.tensor(self.accuracies(self.parse(completions), completions, records))

    def calibration(
        self, prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]
    ) -> Tensor:
        """1 − (accuracy − confidence/10)² where the format reward is positive, else 0 (Brier-style)."""
        parsed = self.parse(completions)
        out = []
        accuracies = self.accuracies(parsed, completions, records)
        for p, accuracy, gate in zip(parsed, accuracies, self._format_scores(parsed)):
            confidence = (
                p.confidence if p.confidence is not None else 0.0
            )  # only reachable with format_rule=upstream
            out.append((1 - (accuracy - confidence / 10) ** 2) if gate > 0 else 0.0)
        return torch.tensor(out)

    def reflection(
        self, prompts: Sequence[str], completions: Sequence[str], records: Sequence[Any]
    ) -> Tensor:
        """The judge's reflection-quality score in [0, 1] where the format reward is positive, else 0."""
        if self.judge is None:
            raise ValueError("the reflection reward needs a judge; set `judge:` (LocalChat or HTTPChat)")
        parsed = self.parse(completions)
        gated = [i for i, gate in enumerate(self._format_scores(parsed)) if gate > 0]
        accuracies = self.accuracies(parsed, completions, records)
        items = [
            JudgeItem(
                records[i].question,
                parsed[i].answer or completions[i],
                parsed[i].reflection or "",
                parsed[i].confidence or 0.0,
                accuracies[i],
            )
            for i in gated
        ]
        scores = judge_reflections(self.judge, items)
        missing = sum(s is None for s in scores)
        self.stats.update(
            {
                "judge/requests": float(len(items)),
                "judge/missing": float(missing),
                "judge/missing_rate": missing / len(items) if items else 0.0,
            }
        )
        out = [0.0] * len(completions)
        for i, score in zip(gated, scores):
            out[i] = self.missing_judge_score if score is None else score
        return torch.tensor(out)
