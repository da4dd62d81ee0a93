"""Logical consistency rules of ICM (upstream ``ICM_tools.py::pick_two_inconsistent_claims``).

Only claims of one ``consistency_id`` group are compared. A rule looks at two labelled claims and their
``consistency_key`` s and says whether the pair is a *contradiction* (e.g. two different final answers both
labelled true) or an *implication* violation (the same answer labelled differently). The consistent
labelings of a pair, which the consistency fix searches over, follow from the rule itself.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from typing import Literal

from metalight.errors import ConfigError

Violation = Literal["contradiction", "implication"]


@dataclass(frozen=True)
class InconsistentPair:
    """Claims ``i`` < ``j`` (indices into the chunk) whose labels break the rule in the way ``kind`` says."""

    i: int
    j: int
    kind: Violation


class ConsistencyRule(ABC):
    """A rule over two claims of one group: ``violation(key_a, key_b, label_a, label_b)``."""

    name: str = ""

    @abstractmethod
    def violation(self, key_a: str, key_b: str, label_a: int, label_b: int) -> Violation | None:
        """How labels ``(label_a, label_b)`` of claims with keys ``key_a``, ``key_b`` break the rule, if they
        do."""

    def consistent_options(self, key_a: str, key_b: str) -> list[tuple[int, int]]:
        """Every labeling of the two claims that satisfies the rule (tried in this order: 1 before 0)."""
        return [(a, b) for a, b in product((1, 0), repeat=2) if self.violation(key_a, key_b, a, b) is None]


class ExclusiveAnswers(ConsistencyRule):
    """Two different answers to one question cannot both be true; the same answer gets the same label.

    GSM8K (key = a solution's final answer) and TruthfulQA MC1 (key = the answer text). Both false is fine.
    """

    name = "exclusive_answers"

    def violation(self, key_a, key_b, label_a, label_b):
        if key_a != key_b:
            return "contradiction" if label_a == label_b == 1 else None
        return "implication" if label_a != label_b else None


class SameAnswerSameLabel(ConsistencyRule):
    """Only identical answers are tied (same label); different answers may both be true or false.

    TruthfulQA MC2 / generation, where several answers to a question are correct.
    """

    name = "same_answer_same_label"

    def violation(self, key_a, key_b, label_a, label_b):
        return "implication" if key_a == key_b and label_a != label_b else None


class Complementary(ConsistencyRule):
    """Exactly one of two complementary claims holds (``A>B`` vs ``B>A``; two framings; two actions).

    Upstream's comparative rule: different keys with equal labels (both true *or* both false) contradict.
    """

    name = "complementary"

    def violation(self, key_a, key_b, label_a, label_b):
        if key_a != key_b:
            return "contradiction" if label_a == label_b else None
        return "implication" if label_a != label_b else None


RULES: dict[str, type[ConsistencyRule]] = {
    "gsm8k": ExclusiveAnswers,
    "truthfulqa-mc1": ExclusiveAnswers,
    "truthfulqa": SameAnswerSameLabel,
    "alpaca": Complementary,
    "truthfulqa_preference": Complementary,
    "ethics": Complementary,
    "daily_dilemmas": Complementary,
    "moral_vignettes": ExclusiveAnswers,
}


def rule_for(testbed: str | None) -> ConsistencyRule:
    """The consistency rule of a testbed; ``ConfigError`` naming the known testbeds when it has none."""
    if testbed not in RULES:
        raise ConfigError(
            f"testbed {testbed!r} has no consistency rules; ICM needs one (known testbeds: "
            f"{', '.join(sorted(RULES))}). Give the DataModule a `testbed` with rules, or register "
            f"a ConsistencyRule subclass in metalight.methods.icm.consistency.RULES"
        )
    return RULES[testbed]()


def inconsistent_pairs(
    groups: Sequence[str],
    keys: Sequence[str],
    labels: Sequence[int | None],
    rule: ConsistencyRule,
    rng: random.Random | None = None,
) -> list[InconsistentPair]:
    """All labelled pairs of one group that break ``rule`` (shuffled by ``rng`` when given, as upstream)."""
    members: dict[str, list[int]] = {}
    for index, (group, label) in enumerate(zip(groups, labels)):
        if label is not None:
            members.setdefault(group, []).append(index)
    pairs = []
    for indices in members.values():
        for a_pos, i in enumerate(indices):
            for j in indices[a_pos + 1 :]:
                kind = rule.violation(keys[i], keys[j], labels[i], labels[j])
                if kind is not None:
                    pairs.append(InconsistentPair(i, j, kind))
    if rng is not None:
        rng.shuffle(pairs)
    return pairs
