"""``GRPOModule``: Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath", arXiv 2402.03300)
with TRL 1.16's loss variants, on the core's shared-prefix generation.

Per generation batch of B questions (one dataloader batch):

1. sample G completions per question with the current policy (temperature, top-p)        -> R = B·G rows
2. score every completion with the reward functions; r = Σ_f w_f r_f
3. A_i = (r_i − mean_group(r)) / (std + 1e-4)   (std of the group, the batch, or none)
4. split the R rows into ``steps_per_generation`` micro-batches (default: ``accumulate_grad_batches``, as
   TRL); each micro-batch is one training step, for ``num_iterations`` μ passes over the generation batch
5. per micro-batch: ρ = π_θ / π_old per token or per sequence, the ``loss_type``'s objective
   (:mod:`metalight.methods.grpo.loss`) + β·KL_k3(π_θ ‖ π_ref), aggregated, backward.

π_old log-probs are computed at generation (before any update) when generation and optimizer steps are not
aligned (``accumulate_grad_batches`` not a multiple of ``steps_per_generation`` · μ), as TRL does. The
dataloader batches that arrive while a generation batch is being used are skipped (TRL repeats its sampler
instead).
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from metalight.data.records import RecordBatch
from metalight.errors import ConfigError, RewardError
from metalight.methods.base import DualPromptModule
from metalight.methods.grpo.advantages import (
    MultiObjectiveAggregation,
    ScaleRewards,
    group_advantages,
    nanstd,
)
from metalight.methods.grpo.loss import (
    ImportanceSamplingLevel,
    LossSettings,
    LossType,
    Normalisers,
    grpo_loss,
    high_entropy_mask,
    masked_sum_count,
    sequence_means,
)
from metalight.methods.grpo.optim import GRPOAdamW
from metalight.methods.grpo.rollout import Rollout, completion_logprobs, sample_rollout
from metalight.methods.rewards import RewardFn, check_columns, resolve_reward, score_reward
from metalight.models.chat import ChatMode, render_prompt
from metalight.models.generation import Decoding, Prompt
from metalight.models.lora import LoraSettings, apply_lora, is_peft
from metalight.prompts import direct_prompt

log = logging.getLogger(__name__)


class GRPOModule(DualPromptModule):
    """GRPO fine-tuning of a causal LM on question records, measured by the dual prompt at each validation.

    Args (the loss and schedule keys carry TRL 1.16 ``GRPOConfig``'s names and defaults;
    docs/grpo.md maps them):
        num_generations: completions sampled per question, G (>= 2).
        rewards: reward name (a shared one, see :mod:`metalight.methods.rewards`, or a dotted path to a
            function) -> weight.
        multi_objective_aggregation: ``sum_then_normalize`` (weighted sum, then group advantage) or
            ``normalize_then_sum`` (GDPO: normalise each reward in its group first).
        scale_rewards: divide the advantage by the std of the ``group``, the ``batch``, or not at all
            (``none``).
        loss_type: ``grpo``, ``bnpo``, ``dr_grpo``, ``dapo`` (TRL's default), ``cispo``, ``sapo``, ``luspo``
            or ``vespo`` (formulas in :mod:`metalight.methods.grpo.loss`).
        importance_sampling_level: ratio per ``token`` or per ``sequence`` (GSPO; required by ``luspo``).
        epsilon: lower clipping range ε of the ratio (and the upper one unless ``epsilon_high`` is set).
        epsilon_high: upper clipping range (DAPO suggests 0.28); for ``cispo`` the absolute cap of the ratio.
        delta: two-sided clipping, an upper bound of the unclipped ratio (INTELLECT-2; ``None``: off).
        beta: weight of the k3 KL penalty to the reference model (0: no reference model is kept).
        use_bias_correction_kl: multiply the KL term by the importance ratio (DeepSeek-V3.2; TRL's default).
        sapo_temperature_neg / sapo_temperature_pos: SAPO's gate temperatures for A ≤ 0 / A > 0.
        vespo_k_pos / vespo_lambda_pos / vespo_k_neg / vespo_lambda_neg: VESPO's gamma-weight (k, λ) per sign
            of A.
        top_entropy_quantile: keep only the top quantile of tokens by entropy in the policy term (1.0: all).
        mask_truncated_completions: leave completions that hit ``max_completion_length`` out of the loss.
        off_policy_mask_threshold: drop negative-advantage sequences whose mean log π_old − log π_θ exceeds
            it.
        num_iterations: passes μ over each generation batch.
        steps_per_generation: micro-batches (training steps) one generation batch is split into; ``None``:
            ``trainer.accumulate_grad_batches`` (TRL's default). Must divide the batch's B·G rows.
        max_prompt_length: prompt tokens kept (the end of a longer prompt).
        max_completion_length: completion budget in tokens.
        temperature: sampling temperature; the log-probabilities use the same temperature.
        top_p: nucleus sampling threshold.
        chat_template: render prompts with the tokenizer's chat template (``auto``: when it has one).
        system_prompt: optional system message for chat-templated prompts.
        optimizer: the optimizer (default ``GRPOAdamW``: lr 1e-6 and no weight decay, as TRL).
        lr_scheduler: the learning-rate schedule, stepped per optimizer step (default: none, constant).
        lora: train a LoRA adapter instead of all weights; the reference is then the adapter-disabled model.
        gradient_checkpointing: recompute activations in backward (less memory, slower; turns off the shared
            prompt prefix in the loss forward).
        share_prefix: run the prompt prefix shared by all rows once in the loss forward (same numbers; off
            under FSDP / DeepSpeed, whose ranks must run identical forwards).
        (other args: see ``DualPromptModule``)
    """

    def __init__(
        self,
        num_generations: int = 8,
        rewards: dict[str, float] | None = None,
        multi_objective_aggregation: MultiObjectiveAggregation = "sum_then_normalize",
        scale_rewards: ScaleRewards = "group",
        loss_type: LossType = LossSettings.loss_type,
        importance_sampling_level: ImportanceSamplingLevel = LossSettings.importance_sampling_level,
        epsilon: float = LossSettings.epsilon,
        epsilon_high: float | None = LossSettings.epsilon_high,
        delta: float | None = LossSettings.delta,
        beta: float = LossSettings.beta,
        use_bias_correction_kl: bool = LossSettings.use_bias_correction_kl,
        sapo_temperature_neg: float = LossSettings.sapo_temperature_neg,
        sapo_temperature_pos: float = LossSettings.sapo_temperature_pos,
        vespo_k_pos: float = LossSettings.vespo_k_pos,
        vespo_lambda_pos: float = LossSettings.vespo_lambda_pos,
        vespo_k_neg: float = LossSettings.vespo_k_neg,
        vespo_lambda_neg: float = LossSettings.vespo_lambda_neg,
        top_entropy_quantile: float = LossSettings.top_entropy_quantile,
        mask_truncated_completions: bool = False,
        off_policy_mask_threshold: float | None = LossSettings.off_policy_mask_threshold,
        num_iterations: int = 1,
        steps_per_generation: int | None = None,
        max_prompt_length: int = 512,
        max_completion_length: int = 512,
        temperature: float = 1.0,
        top_p: float = 1.0,
        chat_template: ChatMode = "auto",
        system_prompt: str | None = None,
        optimizer: OptimizerCallable = GRPOAdamW,
        lr_scheduler: LRSchedulerCallable | None = None,
        lora: LoraSettings | None = None,
        gradient_checkpointing: bool = False,
        share_prefix: bool = True,
        **kwargs,
    ):
        # saves every init arg (this class's too) as hyperparameters
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler, **kwargs)
        self.reward_weights = dict({"alias_match": 1.0} if rewards is None else rewards)
        self.lora = self.record_settings("lora", lora, LoraSettings)
        self.loss_settings = LossSettings(**{k: self.hparams[k] for k in LossSettings.__dataclass_fields__})
        self._check_args()
        self._rewards: list[tuple[str, RewardFn, float]] | None = None
        self._reference: tuple[torch.nn.Module, ...] = ()  # a tuple keeps the frozen copy out of state_dict
        self._slices: list[Rollout] | None = None  # the micro-batches of the current generation batch
        self._micro_step = 0  # training steps taken in this fit (TRL's ``_step``)
        self.timings: dict[str, float] = {}  # seconds spent in each phase of the current step
        self.tokens_seen = 0

    def _check_args(self) -> None:
        h, problems = self.hparams, self.loss_settings.problems()
        if h.num_generations < 2:
            problems.append(
                f"num_generations must be >= 2 (GRPO compares completions within a group), got "
                f"{h.num_generations}"
            )
        if h.num_iterations < 1:
            problems.append(f"num_iterations must be >= 1, got {h.num_iterations}")
        if h.steps_per_generation is not None and h.steps_per_generation < 1:
            problems.append(f"steps_per_generation must be >= 1 or null, got {h.steps_per_generation}")
        if h.temperature <= 0 or not 0 < h.top_p <= 1:
            problems.append("temperature must be > 0 and top_p in (0, 1]")
        if h.max_completion_length < 1 or h.max_prompt_length < 1:
            problems.append("max_completion_length and max_prompt_length must be >= 1")
        if h.scale_rewards not in ("group", "batch", "none"):
            problems.append(f"scale_rewards {h.scale_rewards!r} is not one of group, batch, none")
        if problems:
            raise ConfigError(f"{type(self).__name__}: " + "; ".join(problems))

    # ---- model ------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.model is not None:
            return
        super().configure_model()
        if self.lora is not None:
            self.model = apply_lora(self.model, self.lora)
        elif self.hparams.beta != 0.0:
            reference = copy.deepcopy(self.model).eval().requires_grad_(False)
            self._reference = (reference,)
        if self.hparams.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            if self.lora is not None:
                self.model.enable_input_require_grads()
        self.model.train()

    def reward_table(self) -> dict[str, RewardFn]:
        """The rewards this module knows by name besides the shared ones of :mod:`metalight.methods.rewards`
        (none here; MetaConf adds its own)."""
        return {}

    def build_rewards(self) -> list[tuple[str, RewardFn, float]]:
        """(name, function, weight) of every configured reward (a dotted path is named by its last part, as
        TRL names reward functions); subclasses add their own. GRPO hands its rewards no columns."""
        rewards = []
        for name, weight in self.reward_weights.items():
            fn = resolve_reward(name, self.reward_table())
            check_columns(name, fn, ())
            rewards.append((name.rpartition(".")[2], fn, float(weight)))
        return rewards

    def reward_functions(self) -> list[tuple[str, RewardFn, float]]:
        """The rewards of :meth:`build_rewards`, built once."""
        if self._rewards is None:
            self._rewards = self.build_rewards()
            names = [name for name, _, _ in self._rewards]
            if not names or len(set(names)) < len(names):
                raise ConfigError(
                    f"{type(self).__name__}: reward names must be unique and at least one is needed, "
                    f"got {names}; set `rewards:` (name or dotted path -> weight)"
                )
        return self._rewards

    def prompt_text(self, record) -> str:
        """The user message for a record (default: the core's direct QA prompt)."""
        return direct_prompt(record.question, self.eval_settings.language, record.context)

    # ---- one step ----------------------------------------------------------------------------------------
    def training_step(self, batch: RecordBatch, batch_idx: int) -> Tensor:
        rollout = self._rollout_for(batch, batch_idx)
        start = time.perf_counter()
        loss = self.policy_loss(rollout)
        self.timings["forward"] = time.perf_counter() - start
        return loss

    def steps_per_generation(self) -> int:
        """Micro-batches per generation batch: ``steps_per_generation``, or the trainer's accumulation
        steps."""
        if self.hparams.steps_per_generation is not None:
            return self.hparams.steps_per_generation
        return self.trainer.accumulate_grad_batches if self._trainer is not None else 1

    def _rollout_for(self, batch: RecordBatch, batch_idx: int) -> Rollout:
        """This step's micro-batch: the next slice of the stored generation batch, or a slice of a fresh one
        every ``steps_per_generation`` · μ steps (TRL's ``_prepare_inputs`` schedule)."""
        parts = self.steps_per_generation()
        step, self._micro_step = self._micro_step, self._micro_step + 1
        if step % (parts * self.hparams.num_iterations) == 0 or self._slices is None:
            self._slices = self.generation_batch(batch.records, parts)
        else:
            self.timings.update(generation=0.0, rewards=0.0, reference=0.0)
        return self._slices[step % parts]

    def generation_batch(self, records: Sequence[Any], parts: int) -> list[Rollout]:
        """One generation batch (:meth:`make_rollout`) split into ``parts`` micro-batches, each with its π_old
        log-probs (when generation and optimizer steps are not aligned) and π_ref log-probs (β ≠ 0)."""
        h = self.hparams
        rows = len(records) * h.num_generations
        if rows % parts:
            raise ConfigError(
                f"{type(self).__name__}: steps_per_generation={parts} does not divide the generation "
                f"batch of {rows} rows ({len(records)} questions x num_generations={h.num_generations});"
                f" set data.init_args.batch_size to a multiple of {parts} or change steps_per_generation"
            )
        slices = self.make_rollout(records).split(parts)
        start = time.perf_counter()
        accumulate = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        # Generation not aligned with optimizer steps: later micro-batches see updated weights, so keep π_old.
        keep_old = accumulate % (parts * h.num_iterations) != 0
        for piece in slices:
            if keep_old:
                with torch.no_grad():
                    piece.old_logps = self._logprobs(self.model, piece)[0].detach()
            if h.beta != 0.0:
                piece.ref_logps = self.reference_logprobs(piece)
        self.timings["reference"] = time.perf_counter() - start
        return slices

    def make_rollout(self, records: Sequence[Any]) -> Rollout:
        """Sample G completions per record, score them, and compute advantages over the whole batch."""
        h = self.hparams
        prompts = [
            Prompt(*render_prompt(self.tokenizer, self.prompt_text(r), h.chat_template, h.system_prompt))
            for r in records
        ]
        decoding = Decoding(
            max_new_tokens=h.max_completion_length,
            strategy="sample",
            temperature=h.temperature,
            top_p=h.top_p,
        )
        start = time.perf_counter()
        with self.generation_context():
            rollout = sample_rollout(
                self.model,
                self.tokenizer,
                prompts,
                h.num_generations,
                decoding,
                h.max_prompt_length,
                synced_gpus=self.synced_generation(),
            )
        rollout.records = [r for r in records for _ in range(h.num_generations)]
        self.timings["generation"] = time.perf_counter() - start
        start = time.perf_counter()
        names, table = self.score(rollout)
        weights = torch.tensor([w for _, _, w in self.reward_functions()])
        full = self._gather_rows(table)
        if full.numel() and torch.isnan(full).all():  # ESMA refuses the same: every advantage would be 0
            raise RewardError(
                f"step {self.global_step}: every reward ({', '.join(names)}) is NaN for all "
                f"{full.shape[0]} completions, so there is nothing to learn from (loss 0); NaN means "
                f"'not applicable': check the reward functions (model.init_args.rewards)"
            )
        adv = group_advantages(
            full, weights, h.num_generations, h.scale_rewards, h.multi_objective_aggregation
        )
        rank_rows = (
            slice(self.global_rank * len(table), (self.global_rank + 1) * len(table))
            if full.shape[0] != table.shape[0]
            else slice(None)
        )
        rollout.advantages = adv.values[rank_rows].to(self.device)
        rollout.active_tokens = float(self._global_sum(self.loss_mask(rollout).sum()))
        self.timings["rewards"] = time.perf_counter() - start
        self._log_rollout(rollout, names, full, adv)
        return rollout

    def loss_mask(self, rollout: Rollout, device=None) -> Tensor:
        """[R, C] 1.0 on the completion tokens that enter the loss (truncated rows are 0 with
        ``mask_truncated_completions``)."""
        mask = rollout.mask(device)
        if self.hparams.mask_truncated_completions:
            mask = mask * (~rollout.truncated).to(mask.device).unsqueeze(1)
        return mask

    def score(self, rollout: Rollout) -> tuple[list[str], Tensor]:
        """Every reward function on the rollout: (names, [R, F] table), checked where the values come back
        (:func:`~metalight.methods.rewards.score_reward`: shape, dtype, ±inf; NaN means "not applicable")."""
        columns, names = [], []
        for name, fn, _ in self.reward_functions():
            columns.append(score_reward(name, fn, rollout.prompts, rollout.texts, rollout.records))
            names.append(name)
        return names, torch.stack(columns, dim=1)

    def _logprobs(self, model, rollout: Rollout) -> tuple[Tensor, Tensor]:
        # Sharded ranks must run the same forwards in lock-step; their prefix plans could differ.
        share = (
            self.hparams.share_prefix
            and not self.hparams.gradient_checkpointing
            and not self.synced_generation()
        )
        return completion_logprobs(
            model,
            rollout.prompt_ids,
            rollout.completion_ids,
            self.tokenizer.pad_token_id,
            self.hparams.temperature,
            share_prefix=share,
        )

    @torch.no_grad()
    def reference_logprobs(self, rollout: Rollout) -> Tensor:
        """Log-probs of the completions under the reference: the adapter-disabled model, or the frozen
        copy."""
        if is_peft(self.model):
            with self.model.disable_adapter():
                return self._logprobs(self.model, rollout)[0]
        reference = self._reference[0]
        reference.to(self.device)
        return self._logprobs(reference, rollout)[0]

    def policy_loss(self, rollout: Rollout) -> Tensor:
        """The GRPO loss of one micro-batch under the current policy; logs TRL's loss metrics (``entropy``,
        ``kl``, ``clip_ratio/*`` or ``cispo_clip_ratio`` / ``vespo/phi_seq_mean``)."""
        h, settings = self.hparams, self.loss_settings
        logps, entropy = self._logprobs(self.model, rollout)
        mask = self.loss_mask(rollout, logps.device)
        entropy_mask = None
        if settings.top_entropy_quantile < 1.0:
            pooled = self._gather_ragged(entropy[mask.bool()].float())
            entropy_mask = high_entropy_mask(entropy, mask, settings.top_entropy_quantile, pooled)
        norm = Normalisers(
            h.max_completion_length,
            rollout.active_tokens,
            self.trainer.world_size if self._trainer else 1,
            self.steps_per_generation(),
        )
        terms = grpo_loss(
            logps,
            rollout.old_logps,
            rollout.ref_logps,
            rollout.advantages,
            mask,
            settings,
            norm,
            entropy_mask,
        )
        values = {"entropy": entropy}
        if terms.kl is not None:
            values["kl"] = terms.kl.detach()
        values.update({name: flags.detach() for name, flags in terms.flags.items()})
        metrics = {"loss": terms.loss.detach()}
        for name, value in values.items():
            total, count = masked_sum_count(value, mask)
            metrics[name] = self._global_sum(total) / self._global_sum(count).clamp(min=1.0)
        if "clip_ratio/low_mean" in terms.flags:
            for name, key, reduce in (
                ("clip_ratio/low_min", "clip_ratio/low_mean", torch.min),
                ("clip_ratio/high_max", "clip_ratio/high_mean", torch.max),
            ):
                per_seq = self._gather_rows(sequence_means(terms.flags[key].detach(), mask))
                per_seq = per_seq[~torch.isnan(per_seq)]
                metrics[name] = reduce(per_seq) if per_seq.numel() else torch.tensor(float("nan"))
        self.log_train(metrics)
        return terms.loss

    # ---- distributed helpers -------------------------------------------------------------------------------
    def _global_sum(self, value: Tensor) -> Tensor:
        if self._trainer is None or self.trainer.world_size < 2:
            return value
        return self.trainer.strategy.reduce(value.detach().clone(), reduce_op="sum")

    def _gather_rows(self, rows: Tensor) -> Tensor:
        """Concatenate per-process rows (identity in one process); rows must have equal counts per process."""
        if self._trainer is None or self.trainer.world_size < 2:
            return rows
        gathered = self.all_gather(rows.to(self.device))
        return gathered.reshape(-1, *rows.shape[1:]).cpu()

    def _gather_ragged(self, values: Tensor) -> Tensor:
        """Concatenate a 1-D tensor of any length from every process (identity in one process)."""
        if self._trainer is None or self.trainer.world_size < 2:
            return values
        counts = self.all_gather(torch.tensor(values.numel(), device=self.device)).flatten()
        padded = torch.zeros(int(counts.max()), device=self.device, dtype=values.dtype)
        padded[: values.numel()] = values.to(self.device)
        gathered = self.all_gather(padded).reshape(len(counts), -1)
        return torch.cat([row[: int(n)] for row, n in zip(gathered, counts)])

    # ---- logging -----------------------------------------------------------------------------------------
    def _log_rollout(self, rollout: Rollout, names: list[str], table: Tensor, adv) -> None:
        lengths = self._gather_rows(rollout.lengths)
        truncated = self._gather_rows(rollout.truncated.float()).bool()
        prompt_tokens = self._global_sum(torch.tensor(float(sum(map(len, rollout.prompt_ids)))))
        self.tokens_seen += int(prompt_tokens) + int(lengths.sum())
        terminated = lengths[~truncated] if (~truncated).any() else torch.zeros(1)
        metrics = {
            "reward": torch.nanmean(adv.rewards),
            "reward_std": nanstd(adv.rewards),
            "frac_reward_zero_std": adv.std_is_zero.float().mean(),
            "completions/mean_length": lengths.mean(),
            "completions/min_length": lengths.min(),
            "completions/max_length": lengths.max(),
            "completions/clipped_ratio": truncated.float().mean(),
            "completions/mean_terminated_length": terminated.mean(),
            "completions/min_terminated_length": terminated.min(),
            "completions/max_terminated_length": terminated.max(),
            "num_tokens": float(self.tokens_seen),
        }
        for i, name in enumerate(names):
            metrics[f"rewards/{name}/mean"] = torch.nanmean(table[:, i])
            metrics[f"rewards/{name}/std"] = nanstd(table[:, i])
        self.log_train(metrics)

    def log_train(self, values: dict[str, Any]) -> None:
        """Log ``train/<name>`` per step (nothing outside a Trainer, e.g. when a test calls a step
        directly)."""
        if self._trainer is not None:
            self.log_dict({f"train/{k}": float(v) for k, v in values.items()}, on_step=True, on_epoch=False)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.timings = {"start": time.perf_counter()}

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        timings = self.timings
        if "start" not in timings:
            return
        step = time.perf_counter() - timings["start"]
        spent = {k: timings.get(k, 0.0) for k in ("generation", "rewards", "reference", "forward")}
        values = {
            "time/step": step,
            **{f"time/{k}": v for k, v in spent.items()},
            "time/backward_optimizer": step - sum(spent.values()),
        }
        self.log_train(values)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["grpo_tokens_seen"] = self.tokens_seen

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.tokens_seen = checkpoint.get("grpo_tokens_seen", 0)

    def report_settings(self) -> dict[str, Any]:
        return {**super().report_settings(), "method": type(self).__name__, "rewards": self.reward_weights}
