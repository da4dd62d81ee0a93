"""Internal Coherence Maximization: simulated annealing over one chunk's labels (upstream ``ICM.py::main``).

    U(D) = alpha * mean_i(±score_i) - #inconsistent pairs        (score_i: see predictability.py)

1. Label ``num_seed`` random claims (half true, half false), score them, run the consistency fix.
2. Each step: pick a claim (weight 100 for an unlabelled claim whose group already has a labelled one, else
   1), propose the label the other labelled claims predict (score > 0 -> true); if it differs from the
   current label, apply it, run the consistency fix, and accept with probability exp(ΔU / T). The
   temperature is indexed by accepted flips: ``log``: max(final_T, initial_T / (1 + 2 ln(1 + flips))),
   ``exp``: max(final_T, initial_T * decay^flips).
3. Consistency fix (up to ``consistency_fix_K`` rounds): for each inconsistent pair (shuffled), score every
   labeling of the pair that the rule allows and keep the best; the first pair whose best U is at least the
   best so far is applied and the next round starts. Upstream asked the model for a decision through a
   placeholder prompt and ignored it; this is the search its loop performs, over all consistent labelings
   (e.g. both solutions wrong is a consistent GSM8K option upstream never tried).

All randomness comes from one ``random.Random`` whose state is checkpointed with the labels, the step, the
flip count and the current energy, so a resumed search replays the same proposals.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal, Protocol

from metalight.errors import ConfigError
from metalight.methods.icm.consistency import ConsistencyRule, inconsistent_pairs

Scheduler = Literal["log", "exp"]
UNLABELLED_NEIGHBOUR_WEIGHT = 100


class Scorer(Protocol):
    """Label log-odds of ``queries`` given the other labelled claims (see ``MutualPredictability``)."""

    def log_odds(self, labels: Sequence[int | None], queries: Sequence[int]) -> list[float]: ...


@dataclass(frozen=True)
class SearchSettings:
    """Upstream's arguments (``get_args``); ``K`` is the number of steps per chunk."""

    alpha: float = 30.0
    num_seed: int = 8
    K: int = 3000
    consistency_fix_K: int = 10
    decay: float = 0.99
    initial_T: float = 10.0
    final_T: float = 0.01
    scheduler: Scheduler = "log"

    def check(self) -> None:
        """Raise ``ConfigError`` listing every setting that cannot work."""
        problems = []
        if self.num_seed < 0:
            problems.append("num_seed must be >= 0")
        if self.K < 0 or self.consistency_fix_K < 0:
            problems.append("K and consistency_fix_K must be >= 0")
        if self.initial_T < 0 or self.final_T < 0 or not 0 < self.decay <= 1:
            problems.append("temperatures must be >= 0 and decay in (0, 1]")
        if self.scheduler not in ("log", "exp"):
            problems.append(f"scheduler must be 'log' or 'exp', got {self.scheduler!r}")
        if problems:
            raise ConfigError("ICM settings: " + "; ".join(problems))


def temperature(flips: int, settings: SearchSettings) -> float:
    """Annealing temperature after ``flips`` accepted label changes (upstream ``get_temperature``)."""
    if settings.scheduler == "exp":
        return max(settings.final_T, settings.initial_T * settings.decay**flips)
    return max(settings.final_T, settings.initial_T / (1 + 2 * math.log(1 + flips)))


@dataclass
class Energy:
    """U = alpha * mutual_predictability - inconsistent, and the per-claim log-odds it came from."""

    value: float
    mutual_predictability: float
    inconsistent: int
    scores: dict[int, float] = field(default_factory=dict)


def energy(scores: dict[int, float], labels: Sequence[int | None], inconsistent: int, alpha: float) -> Energy:
    """Upstream ``get_energy``: the mean of +score (label 1) / -score (label 0) over labelled claims."""
    signed = [scores[i] if labels[i] == 1 else -scores[i] for i in scores]
    predictability = sum(signed) / len(signed) if signed else 0.0
    return Energy(alpha * predictability - inconsistent, predictability, inconsistent, dict(scores))


@dataclass
class StepRecord:
    """What one annealing step did (for logs and the resume test)."""

    step: int
    example: int
    proposed: int
    changed: bool
    accepted: bool
    temperature: float
    energy: float
    candidate_energy: float | None


class ICMSearch:
    """Annealing search over the labels of one chunk of claims (see module docstring).

    Args:
        groups, keys: each claim's ``consistency_id`` and ``consistency_key``.
        rule: the testbed's consistency rule.
        scorer: label log-odds given context (the model, or a fake in tests).
        settings: upstream's arguments.
        seed: seed of this chunk's random stream.
    """

    def __init__(
        self,
        groups: Sequence[str],
        keys: Sequence[str],
        rule: ConsistencyRule,
        scorer: Scorer,
        settings: SearchSettings,
        seed: int,
    ):
        settings.check()
        self.groups, self.keys, self.rule, self.scorer, self.settings = (
            list(groups),
            list(keys),
            rule,
            scorer,
            settings,
        )
        self.n = len(self.groups)
        self.rng = random.Random(seed)
        self.labels: list[int | None] = [None] * self.n
        self.step_index = 0
        self.flips = 0
        self.current: Energy | None = None
        self.evaluations = 0

    # ---- the algorithm ----------------------------------------------------------------------------------
    def initialize(self) -> None:
        """Random seed labels (half true), then the first evaluation and consistency fix."""
        count = min(self.settings.num_seed, self.n)
        seeds = [1] * (count // 2) + [0] * (count - count // 2)
        self.rng.shuffle(seeds)
        self.labels = seeds + [None] * (self.n - count)
        self.current = self.evaluate(self.labels)
        self.labels, self.current = self.consistency_fix(self.labels, self.current)

    def step(self) -> StepRecord:
        """One annealing iteration: pick, propose, fix, accept or reject."""
        if self.current is None:
            self.initialize()
        example = self.pick_example()
        proposed = int(self.scorer.log_odds(self.labels, [example])[0] > 0)
        T = temperature(self.flips, self.settings)
        record = StepRecord(
            self.step_index,
            example,
            proposed,
            proposed != self.labels[example],
            False,
            T,
            self.current.value,
            None,
        )
        if record.changed:
            candidate = list(self.labels)
            candidate[example] = proposed
            candidate, fixed = self.consistency_fix(candidate, None)
            new = fixed if fixed is not None else self.evaluate(candidate)
            record.candidate_energy = new.value
            if self.accept(new.value - self.current.value, T):
                self.labels, self.current = candidate, new
                self.flips += 1
                record.accepted, record.energy = True, new.value
        self.step_index += 1
        return record

    def pick_example(self) -> int:
        """Weighted draw: unlabelled claims in a group with a labelled claim are 100x as likely."""
        started = {g for g, label in zip(self.groups, self.labels) if label is not None}
        weights = [
            UNLABELLED_NEIGHBOUR_WEIGHT if label is None and g in started else 1
            for g, label in zip(self.groups, self.labels)
        ]
        return self.rng.choices(range(self.n), weights=weights, k=1)[0]

    def accept(self, delta: float, T: float) -> bool:
        """Metropolis rule: always when U does not drop, else with probability exp(ΔU / T)
        (never at T = 0)."""
        draw = self.rng.random()  # drawn every time, as upstream, so the random stream does not depend on ΔU
        if delta >= 0:
            return True
        return T > 0 and draw < math.exp(delta / T)

    def consistency_fix(
        self, labels: list[int | None], current: Energy | None
    ) -> tuple[list[int | None], Energy | None]:
        """Resolve inconsistent pairs by search (see module docstring); ``current=None`` accepts the first
        fix."""
        if current is not None and current.inconsistent == 0:
            return labels, current
        best, best_labels = current, labels
        for _ in range(self.settings.consistency_fix_K):
            improved = False
            for pair in inconsistent_pairs(self.groups, self.keys, best_labels, self.rule, self.rng):
                options = []
                for label_i, label_j in self.rule.consistent_options(self.keys[pair.i], self.keys[pair.j]):
                    option = list(best_labels)
                    option[pair.i], option[pair.j] = label_i, label_j
                    options.append((self.evaluate(option), option))
                top, top_labels = max(options, key=lambda item: item[0].value)
                if best is None or top.value >= best.value:
                    best, best_labels, improved = top, top_labels, True
                    break
            if not improved or best.inconsistent == 0:
                break
        return best_labels, best

    def evaluate(self, labels: Sequence[int | None]) -> Energy:
        """U of a labelling: every labelled claim scored with the others in context, minus violations."""
        self.evaluations += 1
        labelled = [i for i, label in enumerate(labels) if label is not None]
        scores = dict(zip(labelled, self.scorer.log_odds(labels, labelled))) if labelled else {}
        violations = len(inconsistent_pairs(self.groups, self.keys, labels, self.rule))
        return energy(scores, labels, violations, self.settings.alpha)

    # ---- checkpointing ----------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything the search needs to continue exactly: labels, counters, energy, random state."""
        version, internal, gauss = self.rng.getstate()
        return {
            "labels": list(self.labels),
            "step": self.step_index,
            "flips": self.flips,
            "evaluations": self.evaluations,
            "current": None
            if self.current is None
            else {**asdict(self.current), "scores": sorted(self.current.scores.items())},
            "rng": [version, list(internal), gauss],
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict` output."""
        if len(state["labels"]) != self.n:
            raise ConfigError(
                f"checkpointed ICM chunk has {len(state['labels'])} claims, this one {self.n}: resume "
                f"with the same data and chunk_size"
            )
        self.labels, self.step_index, self.flips = list(state["labels"]), state["step"], state["flips"]
        self.evaluations = state.get("evaluations", 0)
        current = state["current"]
        self.current = (
            None
            if current is None
            else Energy(
                current["value"],
                current["mutual_predictability"],
                current["inconsistent"],
                {int(i): v for i, v in current["scores"]},
            )
        )
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
