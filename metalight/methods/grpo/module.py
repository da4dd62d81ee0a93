"""``GRPOModule``: Group Relative Policy Optimization (Shao et al. 2024, "DeepSeekMath", arXiv 2402.03300)
with TRL 1.16's loss variants, on the core's shared-prefix generation.

Per optimizer step, for a batch of B questions:

1. sample G completions per question with the current policy (temperature, top-p)        -> R = B·G rows
2. score every completion with the reward functions; r = Σ_f w_f r_f
3. A_i = (r_i − mean_group(r)) / (std + 1e-4)   (std of the group, the batch, or none)
4. ρ_t = π_θ(o_t) / π_old(o_t);  ℓ_t = −min(ρ_t A, clip(ρ_t, 1−ε, 1+ε_high) A) + β·KL_k3(π_θ ‖ π_ref)
5. aggregate ℓ_t by ``loss_type`` (grpo, bnpo, dr_grpo, dapo), backward, optimizer step.

With ``num_iterations`` μ > 1 a rollout (and its π_old log-probs) serves μ consecutive optimizer steps; the
dataloader batches that arrive meanwhile are skipped. One training batch is one generation batch: with
``trainer.accumulate_grad_batches`` each micro-batch samples its own rollout.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor

from metalight.data.records import RecordBatch
from metalight.errors import ConfigError
from metalight.methods.base import MetacognitionModule
from metalight.methods.grpo.loss import (
    Aggregation,
    LossType,
    Normalisers,
    ScaleRewards,
    clip_fractions,
    group_advantages,
    grpo_loss,
    nanstd,
)
from metalight.methods.grpo.rollout import Rollout, completion_logprobs, sample_rollout
from metalight.methods.optim import GRPOAdamW
from metalight.methods.rewards import RewardFn, resolve_reward, score_reward
from metalight.models.chat import ChatMode, render_prompt
from metalight.models.generation import Decoding, Prompt
from metalight.models.lora import LoraSettings, apply_lora, is_peft
from metalight.prompts import direct_prompt

log = logging.getLogger(__name__)


class GRPOModule(MetacognitionModule):
    """GRPO fine-tuning of a causal LM on question records, measured by the base class at each validation.

    Args:
        num_generations: completions sampled per question, G (>= 2).
        rewards: reward name (registered, or a dotted path to a function) -> weight.
        reward_aggregation: ``sum_then_normalize`` (weighted sum, then group advantage) or
            ``normalize_then_sum`` (GDPO: normalise each reward in its group first).
        scale_rewards: divide the advantage by the std of the ``group``, the ``batch``, or not at all (``none``).
        loss_type: token aggregation of the loss: ``grpo``, ``bnpo``, ``dr_grpo`` or ``dapo`` (TRL's default).
        epsilon: lower clipping range ε of the ratio (and the upper one unless ``epsilon_high`` is set).
        epsilon_high: upper clipping range (DAPO suggests 0.28).
        beta: weight of the k3 KL penalty to the reference model (0: no reference model is kept).
        num_iterations: optimizer steps per rollout, μ.
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
        share_prefix: run the prompt prefix shared by all rows once in the loss forward (same numbers; off under
            FSDP / DeepSpeed, whose ranks must run identical forwards).
        (other args: see ``MetacognitionModule``)
    """

    def __init__(self, num_generations: int = 8, rewards: dict[str, float] | None = None,
                 reward_aggregation: Aggregation = "sum_then_normalize", scale_rewards: ScaleRewards = "group",
                 loss_type: LossType = "dapo", epsilon: float = 0.2, epsilon_high: float | None = None,
                 beta: float = 0.0, num_iterations: int = 1, max_prompt_length: int = 512,
                 max_completion_length: int = 512, temperature: float = 1.0, top_p: float = 1.0,
                 chat_template: ChatMode = "auto", system_prompt: str | None = None,
                 optimizer: OptimizerCallable = GRPOAdamW, lr_scheduler: LRSchedulerCallable | None = None,
                 lora: LoraSettings | None = None, gradient_checkpointing: bool = False, share_prefix: bool = True,
                 **kwargs):
        # saves every init arg (this class's too) as hyperparameters
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler, **kwargs)
        self.reward_weights = dict({"alias_match": 1.0} if rewards is None else rewards)
        self.lora = LoraSettings(**lora) if isinstance(lora, dict) else lora
        self.hparams["lora"] = asdict(self.lora) if self.lora is not None else None
        self._check_args()
        self._rewards: list[tuple[str, RewardFn, float]] | None = None
        self._reference: tuple[torch.nn.Module, ...] = ()  # a tuple keeps the frozen copy out of state_dict
        self._rollouts: dict[int, Rollout] = {}
        self.timings: dict[str, float] = {}  # seconds spent in each phase of the current step
        self.tokens_seen = 0

    def _check_args(self) -> None:
        h, problems = self.hparams, []
        if h.num_generations < 2:
            problems.append(f"num_generations must be >= 2 (GRPO compares completions within a group), got "
                            f"{h.num_generations}")
        if h.num_iterations < 1:
            problems.append(f"num_iterations must be >= 1, got {h.num_iterations}")
        if h.epsilon <= 0 or (h.epsilon_high is not None and h.epsilon_high <= 0):
            problems.append("epsilon and epsilon_high must be > 0")
        if h.beta < 0:
            problems.append(f"beta must be >= 0, got {h.beta}")
        if h.temperature <= 0 or not 0 < h.top_p <= 1:
            problems.append("temperature must be > 0 and top_p in (0, 1]")
        if h.max_completion_length < 1 or h.max_prompt_length < 1:
            problems.append("max_completion_length and max_prompt_length must be >= 1")
        if h.loss_type not in ("grpo", "bnpo", "dr_grpo", "dapo"):
            problems.append(f"loss_type {h.loss_type!r} is not one of grpo, bnpo, dr_grpo, dapo")
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

    def build_rewards(self) -> list[tuple[str, RewardFn, float]]:
        """(name, function, weight) of every configured reward (a dotted path is named by its last part, as
        TRL names reward functions); subclasses add their own."""
        return [(name.rpartition(".")[2], resolve_reward(name), float(w)) for name, w in self.reward_weights.items()]

    def reward_functions(self) -> list[tuple[str, RewardFn, float]]:
        """The rewards of :meth:`build_rewards`, built once."""
        if self._rewards is None:
            self._rewards = self.build_rewards()
            names = [name for name, _, _ in self._rewards]
            if not names or len(set(names)) < len(names):
                raise ConfigError(f"{type(self).__name__}: reward names must be unique and at least one is needed, "
                                  f"got {names}; set `rewards:` (name or dotted path -> weight)")
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

    def _rollout_for(self, batch: RecordBatch, batch_idx: int) -> Rollout:
        """A fresh rollout, or the stored one of this accumulation slot while μ > 1 reuses it."""
        accumulate = self.trainer.accumulate_grad_batches if self._trainer is not None else 1
        slot, cycle = batch_idx % accumulate, (batch_idx // accumulate) % self.hparams.num_iterations
        if cycle == 0 or slot not in self._rollouts:
            self._rollouts[slot] = self.make_rollout(batch.records)
        else:
            self.timings.update(generation=0.0, rewards=0.0, reference=0.0)
        return self._rollouts[slot]

    def make_rollout(self, records: Sequence[Any]) -> Rollout:
        """Sample G completions per record, score them, and compute advantages (and π_old / π_ref log-probs)."""
        h = self.hparams
        prompts = [Prompt(*render_prompt(self.tokenizer, self.prompt_text(r), h.chat_template, h.system_prompt))
                   for r in records]
        decoding = Decoding(max_new_tokens=h.max_completion_length, strategy="sample", temperature=h.temperature,
                            top_p=h.top_p)
        start = time.perf_counter()
        with self.generation_context():
            rollout = sample_rollout(self.model, self.tokenizer, prompts, h.num_generations, decoding,
                                     h.max_prompt_length, synced_gpus=self.synced_generation())
        rollout.records = [r for r in records for _ in range(h.num_generations)]
        self.timings["generation"] = time.perf_counter() - start
        start = time.perf_counter()
        names, table = self.score(rollout)
        weights = torch.tensor([w for _, _, w in self.reward_functions()])
        full = self._gather_rows(table)
        adv = group_advantages(full, weights, h.num_generations, h.scale_rewards, h.reward_aggregation)
        rank_rows = slice(self.global_rank * len(table), (self.global_rank + 1) * len(table)) \
            if full.shape[0] != table.shape[0] else slice(None)
        rollout.advantages = adv.values[rank_rows].to(self.device)
        self.timings["rewards"] = time.perf_counter() - start
        self._log_rollout(rollout, names, full, adv)
        start = time.perf_counter()
        if h.num_iterations > 1:
            with torch.no_grad():
                rollout.old_logps = self._logprobs(self.model, rollout)[0].detach()
        if h.beta != 0.0:
            rollout.ref_logps = self.reference_logprobs(rollout)
        self.timings["reference"] = time.perf_counter() - start
        return rollout

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
        share = self.hparams.share_prefix and not self.hparams.gradient_checkpointing and not self.synced_generation()
        return completion_logprobs(model, rollout.prompt_ids, rollout.completion_ids, self.tokenizer.pad_token_id,
                                   self.hparams.temperature, share_prefix=share)

    @torch.no_grad()
    def reference_logprobs(self, rollout: Rollout) -> Tensor:
        """Log-probs of the completions under the reference: the adapter-disabled model, or the frozen copy."""
        if is_peft(self.model):
            with self.model.disable_adapter():
                return self._logprobs(self.model, rollout)[0]
        reference = self._reference[0]
        reference.to(self.device)
        return self._logprobs(reference, rollout)[0]

    def policy_loss(self, rollout: Rollout) -> Tensor:
        """The GRPO loss of one rollout under the current policy; logs kl, entropy and clip_ratio/*."""
        h = self.hparams
        logps, entropy = self._logprobs(self.model, rollout)
        mask = rollout.mask(logps.device)
        active = self._global_sum(mask.sum())
        norm = Normalisers(h.max_completion_length, float(active), self.trainer.world_size if self._trainer else 1)
        eps_high = h.epsilon if h.epsilon_high is None else h.epsilon_high
        terms = grpo_loss(logps, rollout.old_logps, rollout.ref_logps, rollout.advantages, mask, h.loss_type, norm,
                          h.epsilon, eps_high, h.beta)
        metrics = {"loss": terms.loss.detach(), "entropy": self._global_sum((entropy * mask).sum()) / active}
        if terms.kl is not None:
            metrics["kl"] = self._global_sum((terms.kl.detach() * mask).sum()) / active
        clipped = clip_fractions(terms.ratio.detach(), rollout.advantages, mask, h.epsilon, eps_high)
        for name, flags in clipped.items():
            metrics[f"clip_ratio/{name}_mean"] = self._global_sum((flags * mask).sum()) / active
        per_seq = {k: (v * mask).sum(-1) / mask.sum(-1).clamp(min=1) for k, v in clipped.items()}
        metrics["clip_ratio/low_min"] = self._gather_rows(per_seq["low"]).min()
        metrics["clip_ratio/high_max"] = self._gather_rows(per_seq["high"]).max()
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

    # ---- logging -----------------------------------------------------------------------------------------
    def _log_rollout(self, rollout: Rollout, names: list[str], table: Tensor, adv) -> None:
        lengths = self._gather_rows(rollout.lengths)
        truncated = self._gather_rows(rollout.truncated.float()).bool()
        prompt_tokens = self._global_sum(torch.tensor(float(sum(map(len, rollout.prompt_ids)))))
        self.tokens_seen += int(prompt_tokens) + int(lengths.sum())
        terminated = lengths[~truncated] if (~truncated).any() else torch.zeros(1)
        metrics = {
            "reward": torch.nanmean(adv.rewards), "reward_std": nanstd(adv.rewards),
            "frac_reward_zero_std": adv.std_is_zero.float().mean(),
            "completions/mean_length": lengths.mean(), "completions/min_length": lengths.min(),
            "completions/max_length": lengths.max(), "completions/clipped_ratio": truncated.float().mean(),
            "completions/mean_terminated_length": terminated.mean(),
            "completions/min_terminated_length": terminated.min(),
            "completions/max_terminated_length": terminated.max(), "num_tokens": float(self.tokens_seen),
        }
        for i, name in enumerate(names):
            metrics[f"rewards/{name}/mean"] = torch.nanmean(table[:, i])
            metrics[f"rewards/{name}/std"] = nanstd(table[:, i])
        self.log_train(metrics)

    def log_train(self, values: dict[str, Any]) -> None:
        """Log ``train/<name>`` per step (nothing outside a Trainer, e.g. when a test calls a step directly)."""
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
        values = {"step_time": step, **{f"time/{k}": v for k, v in spent.items()},
                  "time/backward_optimizer": step - sum(spent.values())}
        self.log_train(values)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["grpo_tokens_seen"] = self.tokens_seen

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.tokens_seen = checkpoint.get("grpo_tokens_seen", 0)

    def report_settings(self) -> dict[str, Any]:
        return {**super().report_settings(), "method": type(self).__name__, "rewards": self.reward_weights}

