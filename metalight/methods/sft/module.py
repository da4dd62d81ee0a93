"""``SFTModule``: supervised fine-tuning on prompt-completion pairs, measured like every other method.

Algorithm (one training step)::

    examples = targets(batch)                      # given pairs, or built from QA records (knowledge,
                                                   # meta_answer: labelled online by the current model)
    tokens   = encode(examples)                    # chat template; prompt tokens labelled -100
    loss     = CE(lm_head(h[t]), x[t+1]) over labelled t   # completion tokens only
    optimizer step (default: AdamW, HF's warm-up + linear decay schedule; ``optimizer`` / ``lr_scheduler``)

ESMA's SFT baseline (``train_sft_meta.py``) is ``targets.builder: meta_answer``: before each step the current
model answers the batch's direct prompts greedily, and the target of the (chat-templated) meta prompt is
"Yes" when that answer is correct, else "No". Full fine-tuning by default; ``lora:`` trains a peft adapter
(only its weights go into checkpoints). ``export:`` writes ``<run_dir>/hf/`` at the end of ``fit``.
Validation batches of QA records get the dual-prompt metrics (``val/*``); batches of prompt-completion
examples get ``val/loss`` and ``val/token_accuracy``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable

from metalight.callbacks.report_writer import run_dir
from metalight.data.examples import SFTExample
from metalight.data.records import QARecord, RecordBatch
from metalight.errors import ConfigError
from metalight.methods.base import DualPromptModule
from metalight.methods.optim import WarmupDecay
from metalight.methods.sft.answers import AnswerSettings, collect_answers
from metalight.methods.sft.encoding import encode_batch
from metalight.methods.sft.loss import LossOutput, completion_loss
from metalight.methods.sft.optim import SFTAdamW
from metalight.methods.sft.targets import (
    KnowledgeStyle,
    answer_replay_targets,
    knowledge_targets,
    meta_answer_targets,
)
from metalight.models.chat import ChatMode
from metalight.models.loading import load_model
from metalight.models.lora import ExportMode, LoraSettings, apply_lora, export_model
from metalight.models.sharding import gathered_state_dict

log = logging.getLogger(__name__)

TargetBuilder = Literal["given", "knowledge", "meta_answer"]


@dataclass(frozen=True)
class TargetSettings:
    """How a training batch becomes prompt-completion examples.

    Args:
        builder: ``given`` (the data holds prompt-completion examples), ``knowledge`` (question -> gold
            answer) or ``meta_answer`` (ESMA's SFT baseline, labelled online by the current model).
        knowledge_style: ``esma`` (direct prompt -> random alias) or ``know_thyself`` (QA system prompt and
            the bare question -> first answer).
        alias: which gold alias a knowledge target uses (default: the style's upstream choice).
        seed: seed of the random alias choice.
        replay_answers: ``meta_answer`` only: also train each batch's direct prompts on the model's own
            answers to them (the answers the labels came from), so that training the meta answer leaves the
            direct answers where they were (self-distillation; costs one more example per question).
    """

    builder: TargetBuilder = "given"
    knowledge_style: KnowledgeStyle = "esma"
    alias: Literal["first", "random"] | None = None
    seed: int = 0
    replay_answers: bool = False


class SFTModule(DualPromptModule):
    """Supervised fine-tuning (full or LoRA) on completion tokens (see module docstring).

    Args:
        targets: how batches become examples (``given`` / ``knowledge`` / ``meta_answer``).
        lora: train a LoRA adapter instead of all weights (``{r, alpha, dropout, target_modules}``).
        max_length: longest training sequence in tokens (longer prompts lose their start).
        completion_only_loss: loss on completion tokens only; ``false`` trains every token (as ESMA's SFT
            scripts do).
        chat_template: how prompts are rendered (``auto``: the chat template when the tokenizer has one,
            else raw concatenation, logged once; ``always``: error without one; ``never``: raw).
        optimizer: the optimizer (default ``SFTAdamW``: lr 1e-5, no weight decay); its weight decay is never
            applied to biases and norm weights (as HF Trainer).
        lr_scheduler: the schedule, stepped per optimizer step (default ``WarmupDecay``: HF's warm-up over
            ``warmup_ratio`` (0) of the steps, then ``linear`` decay to 0; ``cosine`` / ``constant``).
        schedule_per_epoch: restart the schedule (a ``WarmupDecay``) and clear the optimizer's moments each
            epoch (as Know-thyself, which trains every epoch of its judgment loop as a fresh one-epoch run).
        gradient_checkpointing: recompute activations in the backward pass (less memory, ~30% slower).
        export: at the end of ``fit`` write ``<run_dir>/hf/``: ``full`` weights (merged if LoRA), the
            LoRA ``adapter`` only, or ``merged``; ``none`` writes nothing.
        (other args: see ``DualPromptModule``)
    """

    def __init__(
        self,
        targets: TargetSettings | None = None,
        lora: LoraSettings | None = None,
        max_length: int = 512,
        completion_only_loss: bool = True,
        chat_template: ChatMode = "auto",
        optimizer: OptimizerCallable = SFTAdamW,
        lr_scheduler: LRSchedulerCallable | None = WarmupDecay,
        schedule_per_epoch: bool = False,
        gradient_checkpointing: bool = False,
        export: ExportMode | Literal["none"] = "none",
        **kwargs,
    ):
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler, **kwargs)
        self.targets = self.record_settings("targets", targets, TargetSettings, TargetSettings())
        self.lora = self.record_settings("lora", lora, LoraSettings)
        if max_length < 2:
            raise ConfigError("max_length must be >= 2 tokens")
        if self.targets.replay_answers and self.targets.builder != "meta_answer":
            raise ConfigError(
                "targets.replay_answers replays the answers a meta_answer target is labelled from; "
                "set targets.builder: meta_answer or replay_answers: false"
            )
        if export == "adapter" and self.lora is None:
            raise ConfigError("export: adapter needs `lora:`; use export: full for a fully fine-tuned model")
        self.tokens_seen = 0
        self.qa_batches = {"val": 0, "test": 0}  # dual-prompt batches in the current pass, per split

    # ---- model ------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Load the model (base class), then enable gradient checkpointing / wrap it with LoRA."""
        if self.model is not None:
            return
        super().configure_model()
        if self.hparams.gradient_checkpointing:
            self.model.gradient_checkpointing_enable()
            self.model.config.use_cache = False
        if self.lora is not None:
            self.model = apply_lora(self.model, self.lora)
            self.strict_loading = False  # checkpoints hold the adapter only (see on_save_checkpoint)
        self.model.train()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """With LoRA keep only the trainable (adapter) weights: the base is reloaded from ``model``. Sharded
        checkpoints keep everything: torch's distributed checkpoint loads only complete state dicts."""
        if self.lora is None or self.synced_generation():
            return
        # Keep by name rather than drop the frozen ones: a tied LM head is in the state dict twice.
        trainable = {name for name, p in self.named_parameters() if p.requires_grad}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    def export_hf(self, path: str | Path, mode: ExportMode = "full") -> Path:
        """Write the model and tokenizer as a ``save_pretrained`` directory (see ``export`` in Args)."""
        return export_model(self.model, self.tokenizer, path, mode)

    def on_fit_end(self) -> None:
        mode = self.hparams.export
        if mode == "none":
            return
        path = run_dir(self.trainer) / "hf"  # every rank: the run directory is broadcast from rank 0
        if self.synced_generation():
            # Sharded: every rank takes part in gathering the weights, rank 0 writes, the others wait.
            state = gathered_state_dict(self.trainer.strategy.model, self)
            if self.trainer.is_global_zero:
                export_model(self.unsharded_model(state), self.tokenizer, path, mode)
        elif self.trainer.is_global_zero:
            self.export_hf(path, mode)
        if self.trainer.is_global_zero:
            log.info("exported the %s model to %s", mode, path)
        self.trainer.strategy.barrier("sft_export")

    def unsharded_model(self, state: dict[str, torch.Tensor]):
        """A plain (unwrapped) copy of the model, with LoRA if configured, holding ``state`` (this module's
        full state dict, as :func:`gathered_state_dict` returns it)."""
        model, _ = load_model(self.model_spec, self.dtype_name)
        if self.lora is not None:
            model = apply_lora(model, self.lora)
        model.load_state_dict(
            {k.removeprefix("model."): v for k, v in state.items() if k.startswith("model.")}
        )
        return model

    # ---- targets ----------------------------------------------------------------------------------------
    def direct_answer_settings(self, batch_size: int = 32) -> AnswerSettings:
        """Greedy direct answers as the evaluation asks them (ESMA's meta-answer labels)."""
        ev = self.eval_settings
        return AnswerSettings(
            prompt="esma",
            chat_template=ev.direct_chat_template,
            num_answers=1,
            decoding="greedy",
            max_new_tokens=ev.max_new_tokens,
            max_input_tokens=ev.max_input_tokens,
            grading=ev.grading,
            language=ev.language,
            batch_size=batch_size,
        )

    def training_examples(self, records: list[Any]) -> list[SFTExample]:
        """The batch's prompt-completion examples under ``targets.builder``."""
        builder = self.targets.builder
        if all(isinstance(r, SFTExample) for r in records):
            if builder != "given":
                raise ConfigError(
                    f"targets.builder is {builder!r} but the data holds prompt-completion "
                    f"examples; set model.init_args.targets.builder: given"
                )
            return list(records)
        if not all(isinstance(r, QARecord) for r in records):
            raise ConfigError(
                f"SFTModule trains on SFTExample or QARecord batches, got {type(records[0]).__name__}"
            )
        if builder == "given":
            raise ConfigError(
                "the data holds QA records, not prompt-completion examples; set "
                "model.init_args.targets.builder: knowledge or meta_answer, or use "
                "metalight.data.sources.prompt_completion.PromptCompletionDataModule"
            )
        if builder == "knowledge":
            t = self.targets
            return knowledge_targets(records, t.knowledge_style, t.alias, t.seed, self.eval_settings.language)
        with self.generation_context():
            answers = collect_answers(
                self.model,
                self.tokenizer,
                records,
                self.direct_answer_settings(len(records)),
                system=self.eval_settings.system_prompt,
                synced_gpus=self.synced_generation(),
            )
        examples = meta_answer_targets(records, answers, self.eval_settings.language)
        n = len(examples)
        if self.targets.replay_answers:
            examples += answer_replay_targets(
                records, answers, self.eval_settings.language, self.eval_settings.system_prompt
            )
        self.log("train/direct_accuracy", sum(a.correct[0] for a in answers.values()) / n, batch_size=n)
        self.log("train/yes_target_rate", sum(e.meta["target"] == "yes" for e in examples) / n, batch_size=n)
        return examples

    def step_loss(self, examples: list[SFTExample]) -> tuple[LossOutput, int]:
        """Loss of a list of examples, and the number of real tokens it read."""
        tokens = encode_batch(
            self.tokenizer,
            examples,
            self.hparams.max_length,
            self.hparams.chat_template,
            self.hparams.completion_only_loss,
        ).to(self.device)
        return completion_loss(self.model, tokens), tokens.num_tokens

    # ---- steps ------------------------------------------------------------------------------------------
    def training_step(self, batch: RecordBatch, batch_idx: int) -> torch.Tensor:
        examples = self.training_examples(batch.records)
        out, num_tokens = self.step_loss(examples)
        self.tokens_seen += num_tokens
        n = len(examples)
        self.log("train/loss", out.loss.detach(), prog_bar=True, batch_size=n)
        self.log("train/token_accuracy", out.num_top1 / out.num_labelled, batch_size=n)
        self.log("train/tokens_seen", float(self.tokens_seen), batch_size=n, reduce_fx="max")
        return out.loss

    def evaluate_batch(self, batch: RecordBatch, split: str) -> None:
        """QA records: the dual-prompt evaluation; prompt-completion examples: ``<split>/loss`` and
        ``<split>/token_accuracy`` of the completion tokens."""
        records = batch.real_records
        if not records or not isinstance(records[0], SFTExample):
            self.qa_batches[split] += 1
            super().evaluate_batch(batch, split)
            return
        with torch.no_grad():
            out, _ = self.step_loss(records)
        self.log(f"{split}/loss", out.loss, batch_size=len(records), sync_dist=True)
        self.log(
            f"{split}/token_accuracy",
            out.num_top1 / out.num_labelled,
            batch_size=len(records),
            sync_dist=True,
        )

    def finish_evaluation(self, split: str):
        """The dual-prompt outcome when the pass had QA batches; ``None`` for a pass of examples only."""
        had_qa, self.qa_batches[split] = self.qa_batches[split], 0
        return super().finish_evaluation(split) if had_qa else None

    # ---- optimisation -----------------------------------------------------------------------------------
    def optimizer_parameters(self) -> list[dict[str, Any]]:
        """Two param groups: matrices get the optimizer's weight decay, biases and norm weights none."""
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in params if p.ndim >= 2]},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ]
        return [g for g in groups if g["params"]]

    def configure_optimizers(self):
        config = super().configure_optimizers()
        scheduler = config["lr_scheduler"]["scheduler"] if isinstance(config, dict) else None
        if self.hparams.schedule_per_epoch and not isinstance(scheduler, WarmupDecay):
            raise ConfigError(
                "schedule_per_epoch restarts a metalight.methods.optim.WarmupDecay schedule; set "
                "model.init_args.lr_scheduler.class_path to it or schedule_per_epoch: false"
            )
        return config

    def scheduled_steps(self) -> int | None:
        """Optimizer steps the schedule spans: the whole run, or one epoch with ``schedule_per_epoch``."""
        trainer = self._trainer
        if trainer is None or not self.hparams.schedule_per_epoch:
            return super().scheduled_steps()
        batches = trainer.num_training_batches
        if not isinstance(batches, int) or batches <= 0:
            return None
        return math.ceil(batches / trainer.accumulate_grad_batches)

    def on_train_epoch_start(self) -> None:
        if not self.hparams.schedule_per_epoch or not self.trainer.optimizers:
            return
        for optimizer in self.trainer.optimizers:
            optimizer.state.clear()  # a fresh optimizer, as a fresh run would have
        for config in self.trainer.lr_scheduler_configs:
            config.scheduler.restart(self.global_step)

    def report_settings(self) -> dict[str, Any]:
        return {
            **super().report_settings(),
            "method": "sft",
            "targets": self.hparams.targets,
            "lora": self.hparams.lora,
            "completion_only_loss": self.hparams.completion_only_loss,
            "optimizer": self.optimizer_settings(),
        }
