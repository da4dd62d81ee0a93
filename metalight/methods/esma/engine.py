"""How a population is evaluated: the ``engine:`` argument of :class:`~metalight.methods.esma.ESMAModule`.

The engine changes how fast the population is scored, never what the ES computes: members evaluated one by
one with in-place noise and members sharing a batch under per-row low-rank noise give the same answers
(tested). The module asks it for one thing per group of members: a context in which the model answers as
those members (:meth:`PopulationEngine.perturbed`: perturb on entry, restore on exit). When the perturbed
layers start above layer 0, the layers below are the same for every member:
:meth:`PopulationEngine.shared_trunk` gives the iteration's
:class:`~metalight.methods.esma.trunk.SharedTrunk`, which every group then reuses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings, SampleResult, evaluate_records
from metalight.methods.esma.batched import evaluate_rows, shared_meta_p_yes
from metalight.methods.esma.lowrank_forward import LowRankPopulation
from metalight.methods.esma.memory import fitting_members
from metalight.methods.esma.meta_only import answers_kept, meta_p_yes, meta_p_yes_rows, rescored
from metalight.methods.esma.noise import LowRankNoise, NoiseScheme
from metalight.methods.esma.perturb import RestoreMode, perturbed
from metalight.methods.esma.trunk import SharedTrunk, shared_layers
from metalight.methods.esma.update import Member
from metalight.models.generation import Decoder, resolve_decoder

PopulationMode = Literal["sequential", "batched"]
# answer(model, tokenizer, questions, settings, direct=None, check_kept=False, shortlist=None) -> one list of
# results per member of the group; with ``direct`` (the questions' results under the current weights) only the
# meta read-out runs per member, and with ``check_kept`` also a teacher-forced check that the member keeps θ's
# answers (``shortlist``: θ's candidate tokens, :func:`metalight.methods.esma.meta_only.candidate_tokens`).
Answer = Callable[..., list[list[SampleResult]]]


@dataclass(frozen=True)
class PopulationEngine:
    """How the population is evaluated; the results do not depend on it (up to ``restore: subtract`` drift).

    Args:
        population: ``sequential``: member by member, θ + sσε written into the weights and restored after
            (any noise scheme); ``batched``: a group of members shares one decode loop, each row perturbed by
            its member through low-rank forward hooks (``noise: lowrank`` only; the weights are never edited).
        decoder: ``sequential`` decoding: ``compact`` (finished rows leave the batch), ``hf``
            (``model.generate``) or ``auto`` (``compact`` unless ``decoding: model_default``); ``batched``
            always uses ``compact``.
        members_per_batch: members evaluated together in ``batched`` mode (default: as many as fit
            ``max_memory_gb``).
        max_memory_gb: working memory (KV cache, activations, factors; not the weights) one ``batched`` group
            may use, in GB (default: 80% of free GPU memory, or half the available RAM on CPU).
        restore: ``sequential``: undo a perturbation by ``subtract`` (regenerate ε, upstream) or from a
            ``copy`` (bitwise exact, one copy of the perturbed parameters).
        prefix_cache: prefill prompt prefixes shared by many rows once (per member); answers are unchanged.
        share_trunk: when every perturbed parameter is in decoder layers >= first > 0 (``layers: [first,
            stop)``), run the embeddings and layers [0, first) once per prompt for all members, and during
            decoding once per distinct generated history, instead of once per member (models of type llama,
            qwen2, qwen3 with full attention; others run unshared). Answers are unchanged (tested); needs the
            ``compact`` decoder.
    """

    population: PopulationMode = "sequential"
    decoder: Decoder = "auto"
    members_per_batch: int | None = None
    max_memory_gb: float | None = None
    restore: RestoreMode = "subtract"
    prefix_cache: bool = True
    share_trunk: bool = True

    def check(self, scheme: NoiseScheme, settings: EvalSettings) -> None:
        """Raise ``ConfigError`` naming every setting that cannot work with this scheme / evaluation."""
        problems = []
        if self.population == "batched":
            if not isinstance(scheme, LowRankNoise):
                problems.append(
                    f"engine.population: batched needs noise: lowrank (got {scheme.name}); full-rank "
                    f"noise is evaluated member by member (engine.population: sequential)"
                )
            elif scheme.perturb_non_matrix:
                problems.append(
                    "perturb_non_matrix: true gives every member full-rank noise, evaluated in place "
                    "one member at a time: use engine.population: sequential"
                )
            if settings.decoding == "model_default":
                problems.append(
                    "evaluation.decoding: model_default needs engine.population: sequential (and "
                    "engine.decoder: hf or auto)"
                )
        if self.decoder == "compact" and settings.decoding == "model_default":
            problems.append("evaluation.decoding: model_default needs engine.decoder: hf or auto")
        if self.members_per_batch is not None and self.members_per_batch < 1:
            problems.append(f"engine.members_per_batch: {self.members_per_batch} must be >= 1")
        if self.max_memory_gb is not None and self.max_memory_gb <= 0:
            problems.append(f"engine.max_memory_gb: {self.max_memory_gb} must be > 0")
        if problems:
            raise ConfigError("; ".join(problems))

    def group_size(
        self, model, scheme: NoiseScheme, num_questions: int, settings: EvalSettings, population_size: int
    ) -> int:
        """Members per group: 1 when sequential, else ``members_per_batch`` or what fits the memory budget
        (``ConfigError`` when the budget is too small for one member)."""
        if self.population == "sequential":
            return 1
        if self.members_per_batch is not None:
            return max(1, min(self.members_per_batch, population_size))
        trunk = shared_layers(model, scheme) if self.share_trunk else 0
        return fitting_members(
            model, scheme, num_questions, settings, self.max_memory_gb, population_size, trunk
        )

    def shared_trunk(self, model, scheme: NoiseScheme) -> SharedTrunk | None:
        """The shared trunk for one iteration (pass it to every group's :meth:`perturbed`), or ``None`` when
        nothing is shared (``share_trunk: false``, perturbed parameters in layer 0 or outside the decoder
        layers, a model that cannot be split, or ``model.generate`` decoding)."""
        decodes_itself = self.population == "batched" or self.decoder != "hf"
        first = shared_layers(model, scheme) if self.share_trunk and decodes_itself else 0
        return SharedTrunk(model, first) if first else None

    @contextmanager
    def perturbed(
        self, scheme: NoiseScheme, members: Sequence[Member], sigma: float, trunk: SharedTrunk | None = None
    ) -> Iterator[Answer]:
        """Context in which ``answer(model, tokenizer, questions, settings, direct=None, check_kept=False)``
        scores the questions as each of ``members`` (one member when sequential); the weights are θ again on
        exit. Given ``direct`` (the questions' results under θ), only each member's meta P(yes) is read (one
        prefill) and scored against those direct answers; ``check_kept`` also counts a right answer of θ as
        wrong for a member that would not give it (:mod:`metalight.methods.esma.meta_only`). ``trunk``: the
        iteration's :meth:`shared_trunk` (the same for every group of the iteration)."""
        if self.population == "batched":
            with LowRankPopulation(scheme, members, sigma) as population:

                def answer_batched(
                    model, tokenizer, questions, settings, direct=None, check_kept=False, shortlist=None
                ):
                    if direct is not None:
                        n = len(members)
                        p_yes = (
                            shared_meta_p_yes(
                                model, tokenizer, questions, settings, n, population, self.prefix_cache, trunk
                            )
                            if trunk is not None
                            else meta_p_yes_rows(
                                model, tokenizer, questions, settings, n, population, self.prefix_cache
                            )
                        )
                        kept = (
                            answers_kept(
                                model,
                                tokenizer,
                                questions,
                                direct,
                                settings,
                                n,
                                population.row_context,
                                shortlist=shortlist,
                            )
                            if check_kept
                            else [None] * n
                        )
                        return [rescored(direct, p, k) for p, k in zip(p_yes, kept)]
                    return evaluate_rows(
                        model,
                        tokenizer,
                        questions,
                        settings,
                        len(members),
                        population,
                        self.prefix_cache,
                        trunk,
                    )

                yield answer_batched
            return
        if len(members) != 1:
            raise ValueError(f"the sequential engine perturbs one member at a time, got {len(members)}")
        (member,) = members

        def answer(model, tokenizer, questions, settings, direct=None, check_kept=False, shortlist=None):
            if direct is not None:
                kept = (
                    answers_kept(model, tokenizer, questions, direct, settings, shortlist=shortlist)[0]
                    if check_kept
                    else None
                )
                p_yes = (
                    shared_meta_p_yes(
                        model, tokenizer, questions, settings, 1, None, self.prefix_cache, trunk
                    )[0]
                    if trunk is not None
                    else meta_p_yes(model, tokenizer, questions, settings, self.prefix_cache)
                )
                return [rescored(direct, p_yes, kept)]
            if trunk is not None and resolve_decoder(self.decoder, settings.decoding) == "compact":
                return evaluate_rows(model, tokenizer, questions, settings, 1, None, self.prefix_cache, trunk)
            return [
                evaluate_records(
                    model,
                    tokenizer,
                    questions,
                    replace(settings, decoder=self.decoder),
                    prefix_cache=self.prefix_cache,
                )
            ]

        with perturbed(scheme, member.seed, member.sign * sigma, self.restore):
            yield answer

    def evaluate(
        self,
        model,
        tokenizer,
        questions,
        members: Sequence[Member],
        scheme: NoiseScheme,
        sigma: float,
        settings: EvalSettings,
        group_size: int = 1,
    ) -> list[list[SampleResult]]:
        """Per-member results of ``members`` (in order) on ``questions``, ``group_size`` members at a time."""
        results: list[list[SampleResult]] = []
        trunk = self.shared_trunk(model, scheme)
        for group in plan_groups(len(members), group_size):
            with self.perturbed(scheme, [members[i] for i in group], sigma, trunk) as answer:
                results.extend(answer(model, tokenizer, questions, settings))
        return results


def plan_groups(population_size: int, group_size: int) -> list[list[int]]:
    """Consecutive member indices in groups of ``group_size`` (the last may be smaller)."""
    return [
        list(range(i, min(i + group_size, population_size))) for i in range(0, population_size, group_size)
    ]
