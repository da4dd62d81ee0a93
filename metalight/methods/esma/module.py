"""ESMA — Evolution Strategy for Metacognitive Alignment (Park, Meyerson, Qiu & Miikkulainen 2026,
"Fine-Tuning Language Models to Know What They Know", arXiv 2602.02605; code: cosmoquester/ESMA).

One training step is one ES iteration over the same ``num_data_per_iteration`` questions for every member:

1. draw N member seeds and the iteration's questions from (``es_seed``, global step) — a resumed run, and
   every DDP rank, replays exactly the same ones;
2. for each member of this rank's round-robin share: perturb θ + sᵢσεᵢ, score (direct and meta answers →
   fitness Rᵢ = mean per-question reward, ``esma``: correct + [correct = said yes]), restore θ;
3. only the N fitnesses are all-gathered; shape zᵢ = (Rᵢ − mean R)/(std R + 1e-8) (NaN members: weight 0);
4. update: g = −(1/N) Σ zᵢ sᵢ εᵢ is summed in float32, written into ``p.grad`` tensor by tensor and the
   optimizer steps: SGD with lr = α gives the paper's θ ← θ + α/N Σ zᵢεᵢ (``es_update: in_place`` adds each
   member's term to the weights in the parameter dtype instead, as upstream does).

Noise schemes: ``esma`` (upstream), ``iid``, ``lowrank`` (EGGROLL). How step 2 runs — member by member in
place, or a group of ``lowrank`` members in one batch — is the ``engine`` (:class:`PopulationEngine`); it
does not change the answers. See ``docs/esma.md``.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from contextlib import ExitStack
from dataclasses import replace
from typing import Any, Literal

import torch
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor

from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import MetaReadout, SampleResult, evaluate_records, meta_token_ids
from metalight.methods.base import DualPromptModule
from metalight.methods.esma.engine import PopulationEngine, plan_groups
from metalight.methods.esma.meta_only import candidate_tokens
from metalight.methods.esma.noise import NoiseDType, SchemeName, derive_seed, make_scheme
from metalight.methods.esma.optim import ESMASGD
from metalight.methods.esma.population_metrics import PopulationMetacognition
from metalight.methods.esma.resume_guard import EXACT_RESUME_KEYS, check_resume
from metalight.methods.esma.rewards import ESMA_REWARDS, member_fitness, result_columns, reward_summary
from metalight.methods.esma.selection import select_parameters
from metalight.methods.esma.update import (
    Member,
    Shaping,
    UpdateMode,
    add_update_in_place,
    member_seeds,
    shape_fitness,
    shard,
    write_es_gradient,
)
from metalight.methods.rewards import check_columns, resolve_reward, weighted_reward
from metalight.strategies import SHARDED, full_replica_error

log = logging.getLogger(__name__)

COLUMNS = ("fitness", "correctness", "alignment", "yes_ratio")


def iteration_questions(pool_size: int, per_step: int, seed: int, step: int) -> list[int]:
    """Indices of step ``step``'s questions: consecutive slices of an endless sequence of epochs, each a
    permutation drawn from (seed, epoch) — upstream's shuffled loader chained forever, but random-access."""
    out: list[int] = []
    position = step * per_step
    while len(out) < per_step:
        epoch, offset = divmod(position + len(out), pool_size)
        order = torch.randperm(pool_size, generator=torch.Generator().manual_seed(derive_seed(seed, epoch)))
        out.extend(order[offset : offset + per_step - len(out)].tolist())
    return out


def stratified_questions(strata: list[list[int]], per_step: int, seed: int, step: int) -> list[int]:
    """Step ``step``'s question indices drawn evenly from ``strata`` (lists of pool indices): each stratum
    gives ``per_step // K`` questions (the remainder rotates over the strata step by step), each from its own
    endless sequence of seeded permutations, so a resumed run replays the same draws."""
    k = len(strata)
    out: list[int] = []
    for i, stratum in enumerate(strata):
        take = per_step // k + (1 if (i - step) % k < per_step % k else 0)
        if take:
            picks = iteration_questions(len(stratum), take, derive_seed(seed, 1_000_003 + i), step)
            out.extend(stratum[j] for j in picks)
    return out


class ESMAModule(DualPromptModule):
    """ESMA fine-tuning by evolution strategies (see module docstring).

    Args:
        sigma: perturbation scale σ, in weight units (paper: 1e-3).
        population_size: members N per iteration (paper: 32).
        num_data_per_iteration: questions every member answers per iteration (paper: 256).
        reward: a reward name (ESMA's ``esma``, ``correctness``, ``alignment``, ``auroc_alignment``, ..., or
            any method's ``alias_match``, ...), a dotted path (see :mod:`metalight.methods.rewards`), or a
            mapping name -> weight whose weighted sum is the reward
            (e.g. ``{auroc_alignment: 1.0, correctness: 0.3}``).
        noise: ``esma`` (one stream per member over all tensors, upstream), ``iid`` (a stream per tensor) or
            ``lowrank`` (ε = A Bᵀ/√r per Linear weight).
        rank: r of the ``lowrank`` perturbations.
        antithetic: mirrored sampling (members in ± pairs; N must be even).
        parameters: which parameters to perturb: ``all``, ``attention``, ``mlp`` or a regex on names.
        layers: only decoder layers [first, stop) (then embeddings and final norms are excluded).
        noise_dtype: draw noise in the parameter dtype (``param``, upstream) or ``float32``.
        perturb_non_matrix: with ``lowrank``, give norms/biases/embeddings full-rank noise too.
        fitness_shaping: ``zscore`` (upstream) or ``rank`` (centred ranks).
        es_update: ``float32_sum`` (default: Σ zᵢ sᵢ εᵢ summed in float32 and stepped once by the optimizer,
            the more accurate update) or ``in_place`` (upstream: z in float32, then each member's (α zᵢ/N) εᵢ
            rounded to the parameter dtype and added to the weights in place, member by member; needs plain
            SGD, whose lr is α).
        es_seed: run seed of the ES: member seeds and questions come from (es_seed, global step).
        engine: how the population is evaluated (:class:`~metalight.methods.esma.engine.PopulationEngine`;
            default: member by member, in place).
        reward_meta_readout: how the training rewards read the meta answer (``logits``: P(yes) > 0.5 from one
            forward pass, no meta generation); default: as ``evaluation.meta_readout`` (validation keeps it).
        reward_answers: whose direct answers the rewards score: ``members`` (each member answers, ESMA),
            ``current`` (θ answers once per iteration and each member only reads its meta P(yes), one prefill:
            for rewards about the meta read-out) or ``kept`` (as ``current``, and a right answer of θ counts
            as right for a member only if a teacher-forced check shows the member would give it too, one
            more prefill); the last two need ``reward_meta_readout: logits``.
        stratify_questions: draw each iteration's questions evenly from strata: a meta key of the records
            (e.g. ``level`` of the competence testbed) or ``base_correct`` (right / wrong answers of the
            weights at the start of ``fit``); default: uniformly from the pool.
        optimizer: the torch optimizer stepping the ES gradient (``class_path`` + ``init_args``; built once
            the model is loaded); default ``ESMASGD``: plain SGD with the paper's α = 5e-4 as lr.
        (model, dtype, evaluation, dprime_correction, lr_scheduler (stepped after each ES update): see
        ``DualPromptModule``)
    """

    needs_full_replicas = True  # read by the CLI's strategy check: ES cannot run on sharded weights
    exact_resume_keys = EXACT_RESUME_KEYS  # read by the CLI: a resume must keep them (see resume_guard)

    def __init__(
        self,
        sigma: float = 1e-3,
        population_size: int = 32,
        num_data_per_iteration: int = 256,
        reward: str | dict[str, float] = "esma",
        noise: SchemeName = "esma",
        rank: int = 1,
        antithetic: bool = False,
        parameters: str = "all",
        layers: list[int] | None = None,
        noise_dtype: NoiseDType = "param",
        perturb_non_matrix: bool = False,
        fitness_shaping: Shaping = "zscore",
        es_update: UpdateMode = "float32_sum",
        es_seed: int = 42,
        engine: PopulationEngine | None = None,
        reward_meta_readout: MetaReadout | None = None,
        reward_answers: Literal["members", "current", "kept"] = "members",
        stratify_questions: str | None = None,
        optimizer: OptimizerCallable = ESMASGD,
        **kwargs,
    ):
        # saves every init argument (this class's too) as hparams
        super().__init__(optimizer=optimizer, **kwargs)
        self.automatic_optimization = False
        problems = []
        if population_size < 2:
            problems.append(
                f"population_size: {population_size} must be >= 2 (fitness is z-scored across members)"
            )
        if not 0 < sigma < torch.finfo(torch.float32).max:
            problems.append(f"sigma: {sigma} must be > 0 and a finite float32 (paper: 1e-3)")
        if num_data_per_iteration < 1:
            problems.append(f"num_data_per_iteration: {num_data_per_iteration} must be >= 1")
        if antithetic and population_size % 2:
            problems.append(f"population_size: {population_size} must be even with antithetic: true")
        if reward_answers not in ("members", "current", "kept"):
            problems.append(f"reward_answers: {reward_answers!r} must be 'members', 'current' or 'kept'")
        elif (
            reward_answers != "members"
            and (reward_meta_readout or self.eval_settings.meta_readout) != "logits"
        ):
            problems.append(
                f"reward_answers: {reward_answers} reads each member's P(yes) only; set "
                f"reward_meta_readout: logits"
            )
        if problems:
            raise ConfigError("ESMAModule: " + "; ".join(problems))
        if isinstance(reward, dict):
            self.reward_fn = weighted_reward(reward, ESMA_REWARDS)
            self.reward_name = self.reward_fn.__name__
        else:
            self.reward_fn, self.reward_name = resolve_reward(reward, ESMA_REWARDS), reward
        check_columns(self.reward_name, self.reward_fn, result_columns([]))
        self.engine = self.record_settings("engine", engine, PopulationEngine, PopulationEngine())
        self.resume_changes: dict[str, dict] = {}
        self.reward_settings = replace(
            self.eval_settings, meta_readout=reward_meta_readout or self.eval_settings.meta_readout
        )
        self.scheme = None
        self._fit_warnings = ExitStack()
        self.group_size = 1
        self.population_metrics: PopulationMetacognition | None = None
        self._pool: list | None = None
        self._strata: list[list[int]] | None = None

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_resume(self, checkpoint)  # exact resume needs the checkpoint's population, seeds, σ and noise

    # ---- set-up -------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Load the model, then select the parameters and build the noise scheme (errors name the setting)."""
        super().configure_model()
        if self.scheme is None:
            h = self.hparams
            layers = tuple(h.layers) if h.layers is not None else None
            self.scheme = make_scheme(
                h.noise,
                select_parameters(self.model, h.parameters, layers),
                h.noise_dtype,
                h.rank,
                h.perturb_non_matrix,
            )
            self.engine.check(self.scheme, self.reward_settings)

    def optimizer_parameters(self) -> list[torch.nn.Parameter]:
        """Every model parameter: the ES gradient is written into the perturbed ones' ``grad``."""
        return list(self.model.parameters())

    def on_fit_start(self) -> None:
        # ESMA checkpoints the weights after the step's update on purpose (the state a resumed run continues):
        # Lightning's warning about manual optimization and step checkpoints is silenced while it fits.
        self._fit_warnings.close()
        self._fit_warnings.enter_context(warnings.catch_warnings())
        warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
        strategy = type(self.trainer.strategy).__name__.lower()
        sharded = next((s for s in SHARDED if s in strategy), None)
        if sharded:  # the CLI refuses this before launch; this covers Trainer use from Python
            raise full_replica_error(type(self).__name__, sharded)
        datamodule = self.trainer.datamodule
        if datamodule is None or not hasattr(datamodule, "records"):
            raise ConfigError(
                "ESMAModule draws each iteration's questions from the data module's train split: "
                "use a metalight QADataModule (data.class_path)"
            )
        self._pool = datamodule.records("train")
        if not self._pool:
            raise ConfigError("ESMAModule: the data module's train split is empty")
        if self.hparams.stratify_questions:
            self._strata = self.question_strata(self.hparams.stratify_questions)
        group_size = self.engine.group_size(
            self.model,
            self.scheme,
            self.hparams.num_data_per_iteration,
            self.reward_settings,
            self.hparams.population_size,
        )
        # Give every rank work: a group never holds more than its rank's share of the population.
        self.group_size = min(group_size, math.ceil(self.hparams.population_size / self.trainer.world_size))
        reads_p_yes = meta_token_ids(self.tokenizer, self.reward_settings) is not None
        self.population_metrics = PopulationMetacognition(self.hparams.dprime_correction, reads_p_yes).to(
            self.device
        )
        log.info(
            "ESMA: %s noise on %d tensors, %s population, %d member(s) per batch",
            self.scheme.name,
            len(self.scheme.perturbed_indices()),
            self.engine.population,
            self.group_size,
        )

    def on_fit_end(self) -> None:
        self._fit_warnings.close()  # (a fit that raises leaves it to the caller's own warning state)

    # ---- one ES iteration ---------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx: int) -> None:
        """One ES iteration (the loader's batch only paces steps: questions come from (es_seed, step))."""
        step, h = self.global_step, self.hparams
        if self._strata is not None:
            indices = stratified_questions(self._strata, h.num_data_per_iteration, h.es_seed, step)
        else:
            indices = iteration_questions(len(self._pool), h.num_data_per_iteration, h.es_seed, step)
        questions = [self._pool[i] for i in indices]
        members = member_seeds(h.es_seed, step, h.population_size, h.antithetic)
        start = time.perf_counter()
        direct = shortlist = None
        if h.reward_answers != "members":  # θ answers once; the members only read their meta P(yes)
            self.model.eval()
            direct = evaluate_records(self.model, self.tokenizer, questions, self.reward_settings)
            if h.reward_answers == "kept":
                shortlist = candidate_tokens(
                    self.model, self.tokenizer, questions, direct, self.reward_settings
                )
        table = self.gather_members(self.score_members(questions, members, step, direct, shortlist))
        population_time = time.perf_counter() - start
        weights, missing = self.shape(table[:, 0], step)  # zᵢ from the fitnesses Rᵢ
        start = time.perf_counter()
        if h.es_update == "in_place":  # upstream: θ += (α zᵢ/N) εᵢ member by member, in the parameter dtype
            grad_norm, update_norm = self.step_in_place(members, weights)
        else:
            grad_norm = write_es_gradient(self.scheme, members, weights)  # g = −(1/N) Σ zᵢ sᵢ εᵢ
            update_norm = self.step_optimizer(grad_norm)  # SGD(lr = α): θ ← θ + α/N Σ zᵢ sᵢ εᵢ
        self.check_finite(step)
        self.log_iteration(
            table,
            missing,
            grad_norm,
            update_norm,
            population_time,
            time.perf_counter() - start,
            len(questions),
        )

    def question_strata(self, key: str) -> list[list[int]]:
        """Pool indices grouped by ``key``: a record meta key, or ``base_correct`` (answered now by θ)."""
        if key == "base_correct":
            self.model.eval()
            labels = [
                r.correct
                for r in evaluate_records(self.model, self.tokenizer, self._pool, self.reward_settings)
            ]
        else:
            labels = [getattr(r, "meta", {}).get(key) for r in self._pool]
            if any(label is None for label in labels):
                missing = sum(label is None for label in labels)
                raise ConfigError(
                    f"stratify_questions: {key!r}: {missing} of {len(labels)} training records have "
                    f"no meta[{key!r}]; use a key every record carries or base_correct"
                )
        strata: dict[Any, list[int]] = {}
        for index, label in enumerate(labels):
            strata.setdefault(label, []).append(index)
        log.info(
            "ESMA: questions drawn evenly from %d strata of %s (%s)",
            len(strata),
            key,
            ", ".join(f"{k}: {len(v)}" for k, v in sorted(strata.items(), key=lambda kv: str(kv[0]))),
        )
        return [strata[k] for k in sorted(strata, key=str)]

    def score_members(
        self,
        questions,
        members: list[Member],
        step: int,
        direct: list[SampleResult] | None = None,
        shortlist: list[Tensor] | None = None,
    ) -> Tensor:
        """This rank's share, a group at a time (one member, or a batch of ``lowrank`` members): perturb,
        score, restore. ``direct``: the questions' results under θ (``reward_answers: current``; then only
        each member's meta P(yes) is read). Returns rows [fitness, correctness, alignment, yes_ratio,
        evaluated here] per member."""
        self.model.eval()
        table = torch.full((len(members), len(COLUMNS) + 1), float("nan"))
        table[:, -1] = 0.0
        groups = shard(plan_groups(len(members), self.group_size), self.global_rank, self.trainer.world_size)
        trunk = self.engine.shared_trunk(self.model, self.scheme)  # layers below the perturbed ones: run once
        for group in groups:
            if self.reward_settings.decoding != "greedy":  # sampled answers replay on resume too
                torch.manual_seed(derive_seed(self.hparams.es_seed, step, group[0]))
            with self.engine.perturbed(
                self.scheme, [members[i] for i in group], self.hparams.sigma, trunk
            ) as answer:
                results = answer(
                    self.model,
                    self.tokenizer,
                    questions,
                    self.reward_settings,
                    direct,
                    self.hparams.reward_answers == "kept",
                    shortlist,
                )  # θ is back on exit
            for index, member_results in zip(group, results):
                table[index] = self.member_row(questions, member_results)
        return table

    def member_row(self, questions: list, results: list[SampleResult]) -> Tensor:
        """A member's row of the table: fitness, reward components, 1 (evaluated on this rank); its answers
        also go into the iteration's train-time metacognition."""
        self.population_metrics.update(results)
        summary = reward_summary(results)
        return torch.tensor(
            [
                member_fitness(self.reward_name, self.reward_fn, questions, results),
                *(summary[c] for c in COLUMNS[1:]),
                1.0,
            ]
        )

    def gather_members(self, table: Tensor) -> Tensor:
        """All members' rows from every rank (only these N × 4 numbers cross processes)."""
        if self.trainer.world_size == 1:
            return table[:, :-1]
        gathered = self.all_gather(table.to(self.device)).cpu()  # [ranks, N, columns]
        owner = gathered[:, :, -1].argmax(0)
        return gathered[owner, torch.arange(table.shape[0])][:, :-1]

    def shape(self, fitness: Tensor, step: int) -> tuple[Tensor, int]:
        """Update weights from fitness; NaN members get weight 0 (logged), all-NaN is an error."""
        try:
            dtype = (
                torch.float32 if self.hparams.es_update == "in_place" else torch.float64
            )  # upstream: float32
            weights, missing = shape_fitness(fitness, self.hparams.fitness_shaping, dtype)
        except ValueError as err:
            raise ConfigError(
                f"step {step}: reward {self.reward_name!r} is NaN for every member ({err}); "
                f"check the reward function (reward:); a reward that needs right and wrong answers "
                f"(auroc_alignment, esma_auroc, balanced_brier_alignment) is NaN when every answer "
                f"of the iteration is right or every one wrong: draw both with stratify_questions: "
                f"base_correct"
            ) from err
        if missing:
            log.warning(
                "step %d: %d of %d members have a NaN reward; they get weight 0", step, missing, len(fitness)
            )
        return weights, missing

    def step_in_place(self, members: list[Member], weights: Tensor) -> tuple[float, float]:
        """``es_update: in_place``: add the members' terms to the weights with the SGD lr as α; the optimizer
        steps with no gradient (its step count, and the schedule, advance). Returns (‖Δθ‖/α, ‖Δθ‖₂)."""
        optimizer = self.optimizers()
        groups = optimizer.optimizer.param_groups
        if (
            type(optimizer.optimizer) not in (torch.optim.SGD, ESMASGD)
            or len({g["lr"] for g in groups}) != 1
            or any(g["momentum"] or g["weight_decay"] or g["maximize"] for g in groups)
        ):
            raise ConfigError(
                "ESMAModule: es_update: in_place adds α/N Σ zᵢ εᵢ to the weights itself, so the "
                "optimizer must be plain SGD (no momentum or weight decay; its lr is α): use "
                "metalight.methods.esma.optim.ESMASGD or torch.optim.SGD, or es_update: float32_sum"
            )
        lr = groups[0]["lr"]
        update_norm = add_update_in_place(self.scheme, members, weights, lr)
        optimizer.zero_grad(set_to_none=True)
        optimizer.step()  # no parameter has a gradient: only the step count moves
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        return update_norm / lr, update_norm

    def check_finite(self, step: int) -> None:
        """Refuse weights made non-finite by this step (a σ so large that θ + σε overflows, and restoring it
        leaves inf - inf = NaN), before anything is checkpointed."""
        for i in self.scheme.perturbed_indices():
            selected = self.scheme.selected[i]
            if not torch.isfinite(selected.param).all():
                raise ConfigError(
                    f"step {step}: the update made {selected.name} non-finite (NaN or inf): sigma: "
                    f"{self.hparams.sigma} is far too large for weights of this scale (paper: 1e-3), "
                    f"or the learning rate is; lower model.init_args.sigma"
                )

    def step_optimizer(self, grad_norm: float) -> float:
        """Step the optimizer on the written gradient; returns ‖Δθ‖₂ over the perturbed parameters."""
        optimizer = self.optimizers()
        inner = optimizer.optimizer
        params = [self.scheme.selected[i].param for i in self.scheme.perturbed_indices()]
        groups = inner.param_groups
        plain_sgd = (
            type(inner) in (torch.optim.SGD, ESMASGD)
            and all(g["momentum"] == 0 and g["weight_decay"] == 0 and not g["maximize"] for g in groups)
            and len({g["lr"] for g in groups}) == 1
        )
        before = None if plain_sgd else [p.detach().clone() for p in params]
        lr = groups[0]["lr"]  # the step's, before a schedule moves it
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        scheduler = self.lr_schedulers()
        if scheduler is not None:  # manual optimization: Lightning leaves the schedule to us
            scheduler.step()
        if plain_sgd:
            return lr * grad_norm
        return math.sqrt(
            sum((p.detach().double() - b.double()).square().sum().item() for p, b in zip(params, before))
        )

    def log_iteration(
        self,
        table: Tensor,
        missing: int,
        grad_norm: float,
        update_norm: float,
        population_time: float,
        update_time: float,
        num_questions: int,
    ) -> None:
        """Log the iteration's reward statistics, per-component rewards, train-time metacognition of the
        population's answers, norms and timings."""
        fitness = table[:, 0][torch.isfinite(table[:, 0])]
        values = {
            "train/reward": fitness.mean(),
            "train/reward_std": fitness.std() if len(fitness) > 1 else torch.tensor(0.0),
            "train/reward_min": fitness.min(),
            "train/reward_max": fitness.max(),
            "train/nan_members": float(missing),
            "train/grad_norm": grad_norm,
            "train/update_norm": update_norm,
            "train/time/population_eval": population_time,
            "train/time/update": update_time,
        }
        for column, name in enumerate(COLUMNS[1:], start=1):
            values[f"train/{name}"] = table[:, column].nanmean()
        # Every rank calls compute(): it reduces the population's answers over ranks.
        values.update({f"train/{k}": v for k, v in self.population_metrics.compute().items()})
        reward = values.pop("train/reward")
        self.log_dict({k: float(v) for k, v in values.items()}, batch_size=num_questions)
        self.log("train/reward", float(reward), prog_bar=True, batch_size=num_questions)

    def report_settings(self) -> dict:
        """The base settings, and the exact-resume settings a resumed run was allowed to change."""
        return {
            **super().report_settings(),
            **({"resume_changes": self.resume_changes} if self.resume_changes else {}),
        }
