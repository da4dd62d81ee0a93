"""Accuracy graders of MetaConf's task families, routed by a record's ``meta["task_type"]`` as upstream's
``caculate_accuracy.py``:

* :class:`BoxedAnswerGrader` (``math``, no judge): 1 when the reply's last ``\\boxed{}`` (else the reply)
  equals the gold answer (:func:`metalight.math_answers.math_equivalent`), else 0.
* :class:`StepJudgeGrader` (``math``, upstream's DeepSeek-V3 check): a judge marks each step of the reply
  correct or wrong and ends with ``Final Score: x`` = correct / total steps; x is kept when 0 ≤ x ≤ 1.
* :class:`FactScoreGrader` (``long_fact``, FActScore-style): the judge splits the reply into atomic facts,
  then answers True/False for each; the score is supported facts / ``denominator`` (upstream: 20) capped at 1,
  or supported / all facts when ``denominator`` is ``None``. Upstream checks facts with an NLI model against a
  local knowledge DB; here the judge's own knowledge decides.

A grade is ``None`` when a judge request failed or its reply was unusable: the caller counts it as missing,
and the warning names the endpoint and HTTP status (from :class:`~metalight.methods.metaconf.judge.HTTPChat`).
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from metalight.math_answers import last_boxed, math_equivalent
from metalight.methods.metaconf.judge import ChatBackend
from metalight.prompts import METACONF_ATOMIC_FACTS, METACONF_FACT_CHECK, METACONF_STEP_CHECK

log = logging.getLogger(__name__)
_FINAL_SCORE = re.compile(r"final\s*score\s*[:=]\s*\**\s*([0-9]*\.?[0-9]+)", re.IGNORECASE)
_FACT_LINE = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+(.+?)\s*$")
_VERDICT = re.compile(r"^\W*(true|false|supported|not supported|yes|no)\b", re.IGNORECASE)


class TaskGrader(ABC):
    """Grades replies to records: a score in [0, 1] per reply, ``None`` where a judge failed."""

    @abstractmethod
    def grade(self, records: Sequence[Any], replies: Sequence[str]) -> list[float | None]:
        """One grade per (record, reply), order preserved."""

    def describe(self) -> dict[str, Any]:
        """Settings for reports (never secrets)."""
        return {"grader": type(self).__name__}


def _ask(judge: ChatBackend, grader: str, messages: list[str]) -> list[str | None]:
    """The judge's replies to single-turn ``messages``; failures logged once with the backend's errors."""
    replies = judge.complete_many([[{"role": "user", "content": m}] for m in messages]) if messages else []
    failed = sum(r is None for r in replies)
    if failed:
        errors = sorted(set(getattr(judge, "last_errors", []) or ["no reply"]))
        log.warning(
            "%s: %d of %d judge requests failed (%s)", grader, failed, len(replies), "; ".join(errors[:3])
        )
    return replies


class BoxedAnswerGrader(TaskGrader):
    """Exact maths grading of the last ``\\boxed{}`` against the record's gold answer (no judge).

    Args:
        use_sympy: compare with SymPy when it is importable (else normalised strings and numbers only).
    """

    def __init__(self, use_sympy: bool = True):
        self.use_sympy = use_sympy

    def grade(self, records: Sequence[Any], replies: Sequence[str]) -> list[float | None]:
        out: list[float | None] = []
        for record, reply in zip(records, replies):
            answer = last_boxed(reply) or reply
            out.append(float(any(math_equivalent(answer, gold, self.use_sympy) for gold in record.answers)))
        return out

    def describe(self) -> dict[str, Any]:
        return {"grader": "boxed", "use_sympy": self.use_sympy}


def parse_final_score(text: str | None) -> float | None:
    """The last ``Final Score: x`` of a step-check reply if 0 ≤ x ≤ 1, else ``None``."""
    scores = _FINAL_SCORE.findall(text or "")
    value = float(scores[-1]) if scores else None
    return value if value is not None and 0 <= value <= 1 else None


class StepJudgeGrader(TaskGrader):
    """Step-graded maths: the judge's fraction of correct steps in the reply.

    Args:
        judge: ``LocalChat`` or ``HTTPChat`` (upstream: DeepSeek-V3 at temperature 0.9, 1000 tokens).
    """

    def __init__(self, judge: ChatBackend):
        self.judge = judge

    def grade(self, records: Sequence[Any], replies: Sequence[str]) -> list[float | None]:
        messages = [
            METACONF_STEP_CHECK.format(
                question=r.question, solution=reply, reference=r.meta.get("solution") or "; ".join(r.answers)
            )
            for r, reply in zip(records, replies)
        ]
        return [parse_final_score(text) for text in _ask(self.judge, "StepJudgeGrader", messages)]

    def describe(self) -> dict[str, Any]:
        return {"grader": "step_judge", "judge": self.judge.describe()}


def parse_facts(text: str) -> list[str]:
    """The atomic facts of a splitter reply: its bulleted or numbered lines."""
    return [m.group(1) for line in text.splitlines() if (m := _FACT_LINE.match(line))]


def parse_verdict(text: str | None) -> bool | None:
    """``True`` / ``False`` from a fact-check reply's first word, ``None`` when it says neither."""
    match = _VERDICT.match(text or "")
    return None if match is None else match.group(1).lower() in ("true", "supported", "yes")


class FactScoreGrader(TaskGrader):
    """Long-form factuality: atomic facts of the reply, each checked by the judge.

    Args:
        judge: ``LocalChat`` or ``HTTPChat``; it both splits the reply and checks each fact.
        denominator: supported facts are divided by this and capped at 1 (upstream: 20); ``None`` divides by
            the number of facts.
        max_facts: facts checked per reply (the first ones), to bound the requests.
    """

    def __init__(self, judge: ChatBackend, denominator: int | None = 20, max_facts: int = 30):
        if denominator is not None and denominator < 1 or max_facts < 1:
            raise ValueError("FactScoreGrader: denominator (or null) and max_facts must be >= 1")
        self.judge, self.denominator, self.max_facts = judge, denominator, max_facts

    def grade(self, records: Sequence[Any], replies: Sequence[str]) -> list[float | None]:
        splits = _ask(self.judge, "FactScoreGrader", [METACONF_ATOMIC_FACTS.format(text=r) for r in replies])
        all_facts = [parse_facts(s) if s is not None else None for s in splits]
        if cut := sum(
            len(fs) - self.max_facts for fs in all_facts if fs is not None and len(fs) > self.max_facts
        ):
            log.warning(
                "FactScoreGrader: %d atomic facts beyond max_facts=%d per reply were not checked",
                cut,
                self.max_facts,
            )
        facts = [fs[: self.max_facts] if fs is not None else None for fs in all_facts]
        checks = [
            (i, METACONF_FACT_CHECK.format(topic=records[i].meta.get("title") or records[i].question, fact=f))
            for i, fs in enumerate(facts)
            for f in fs or []
        ]
        verdicts = [parse_verdict(v) for v in _ask(self.judge, "FactScoreGrader", [m for _, m in checks])]
        supported, unusable = [0] * len(replies), [False] * len(replies)
        for (i, _), verdict in zip(checks, verdicts):
            unusable[i] |= verdict is None
            supported[i] += bool(verdict)
        out: list[float | None] = []
        for i, fs in enumerate(facts):
            if fs is None or unusable[i]:
                out.append(None)
            elif not fs:
                out.append(0.0)  # a reply that states no fact supports none
            else:
                out.append(min(1.0, supported[i] / (self.denominator or len(fs))))
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "grader": "factscore",
            "denominator": self.denominator,
            "max_facts": self.max_facts,
            "judge": self.judge.describe(),
        }
