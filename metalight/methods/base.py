"""The base of every method, and the base of the methods measured with the dual-prompt protocol.

``MetacognitionModule`` owns what every method shares: the causal LM and its tokenizer, the optimizer and
schedule (injected as ``optimizer`` / ``lr_scheduler``), and the evaluation hooks. A validation / test batch
goes to :meth:`~MetacognitionModule.evaluate_batch`; at the end of the pass
:meth:`~MetacognitionModule.finish_evaluation` returns an
:class:`~metalight.methods.evaluation.EvaluationOutcome` (or ``None``: nothing to report), which is logged as
``<split>/<key>`` and written by the one report writer (``report.json``, samples, plots).

``DualPromptModule`` holds a :class:`~metalight.methods.evaluation.DualPromptEvaluation`: every model it
trains is measured the same way, ESMA's direct + meta prompts with the registry's metrics. ESMA, SFT, GRPO,
MetaConf and the evaluators build on it; ICM (held-out labelling accuracy) and the probes (probe accuracy per
layer) measure their own quantities on ``MetacognitionModule``. ``EvalModule`` is ``DualPromptModule`` with
nothing added: ``python cli.py validate --config configs/eval/....yaml`` measures any model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict
from typing import Any, Literal, TypeVar

from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from metalight.data.records import RecordBatch
from metalight.errors import ConfigError, DataError
from metalight.evaluation.dual_prompt import EvalSettings, SampleResult
from metalight.methods.evaluation import DualPromptEvaluation, EvaluationOutcome, row_counts
from metalight.methods.optim import WarmupDecay, factory_from_settings, factory_settings
from metalight.models.loading import DTypeName, load_model
from metalight.models.sharding import full_params_for_generation

log = logging.getLogger(__name__)

DEFAULT_MODEL = "embedded:smollm2-135m-instruct"
Settings = TypeVar("Settings")


class MetacognitionModule(LightningModule):
    """Base of every method: a causal LM, its optimizer, and the evaluation hooks the report writer reads.

    Class attributes the CLI reads before it builds anything: ``needs_full_replicas`` (the method cannot run
    on sharded weights) and ``exact_resume_keys`` (init arguments that a resumed run must keep; a changed one
    is refused by the method's resume guard instead of silently replaced by the checkpoint's).

    Args:
        model: model spec: a hub id, a local directory, a ``.gguf`` file, or
            ``embedded:smollm2-135m-instruct``.
        dtype: parameter dtype the model is loaded in (``float32`` is the fast path on CPU).
        optimizer: builds the optimizer from the trainable parameters (``class_path`` + ``init_args`` in a
            config; the learning rate is its ``lr``). Each training method defaults to its own class in its
            package's ``optim.py``; ``None`` here: a measurement-only module, which cannot be fitted.
        lr_scheduler: builds a learning-rate schedule from the optimizer, stepped once per optimizer step
            (``None``: a constant learning rate).
    """

    needs_full_replicas = False
    exact_resume_keys: tuple[str, ...] = ()

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        dtype: DTypeName = "float32",
        optimizer: OptimizerCallable | None = None,
        lr_scheduler: LRSchedulerCallable | None = None,
    ):
        super().__init__()
        # The factories are recorded as plain class_path / init_args data (checkpoints load with
        # weights_only).
        self.save_hyperparameters(ignore=["evaluation", "optimizer", "lr_scheduler"])
        self.optimizer_factory = factory_from_settings(optimizer)
        self.lr_scheduler_factory = factory_from_settings(lr_scheduler)
        self.hparams["optimizer"] = factory_settings(optimizer)
        self.hparams["lr_scheduler"] = factory_settings(lr_scheduler)
        self.model_spec, self.dtype_name = model, dtype
        self.model: nn.Module | None = None
        self.tokenizer = None
        self.eval_outcomes: dict[str, EvaluationOutcome] = {}

    def record_settings(
        self, name: str, value: Settings | dict | None, cls: type[Settings], default: Settings | None = None
    ) -> Settings | None:
        """A settings dataclass argument as an object (``cls(**value)`` when a checkpoint passes back the
        recorded dict; ``default`` when it is ``None``), recorded in ``hparams[name]`` as a plain dict so that
        checkpoints load with ``weights_only``."""
        settings = cls(**value) if isinstance(value, dict) else default if value is None else value
        self.hparams[name] = asdict(settings) if settings is not None else None
        return settings

    # ---- model ------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Load the model and tokenizer once (Lightning calls this inside the strategy's context)."""
        if self.model is None:
            self.model, self.tokenizer = load_model(self.model_spec, self.dtype_name)
            self.model.to(self.device)
            self.model.eval()

    def synced_generation(self) -> bool:
        """Whether ranks must generate in lock-step (sharded strategies: FSDP, DeepSpeed)."""
        trainer = self._trainer
        if trainer is None or trainer.world_size < 2:
            return False
        name = type(trainer.strategy).__name__.lower()
        return "fsdp" in name or "deepspeed" in name

    def generation_context(self):
        """Context for ``generate`` calls: gathers FSDP root parameters when the model is FSDP-wrapped."""
        trainer = self._trainer
        return full_params_for_generation(trainer.strategy.model if trainer is not None else None)

    def transfer_batch_to_device(self, batch: Any, device, dataloader_idx: int) -> Any:
        """Record batches hold text, not tensors: they stay where they are."""
        if isinstance(batch, RecordBatch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # ---- optimisation -----------------------------------------------------------------------------------
    def optimizer_parameters(self) -> list[Any]:
        """What the optimizer steps: every trainable parameter (a subclass may return param groups)."""
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self):
        """``optimizer`` over :meth:`optimizer_parameters`, with ``lr_scheduler`` stepped every optimizer
        step."""
        if self.optimizer_factory is None:
            raise ConfigError(
                f"{type(self).__name__} has no optimizer: it only measures (use cli.py validate or "
                f"test), or set model.init_args.optimizer"
            )
        optimizer = self.optimizer_factory(self.optimizer_parameters())
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        if isinstance(scheduler, WarmupDecay):
            scheduler.count_steps_with(self.scheduled_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def scheduled_steps(self) -> int | None:
        """Optimizer steps a ``WarmupDecay`` schedule spans: the run's (``None`` outside a Trainer)."""
        if self._trainer is None:
            return None
        steps = self._trainer.estimated_stepping_batches
        if math.isinf(steps):
            raise ConfigError(
                "model.init_args.lr_scheduler (WarmupDecay) spans the whole run, but the run has no end "
                "(trainer.max_steps: -1 and max_epochs: -1): set one of them, or "
                "lr_scheduler.init_args.total_steps, or lr_scheduler: null for a constant lr"
            )
        return int(steps)

    def optimizer_settings(self) -> dict[str, Any] | None:
        """The optimizer as configured, for reports: ``{"class_path", "init_args"}`` (the ``lr`` among
        them)."""
        return self.hparams.get("optimizer")

    # ---- evaluation hooks -------------------------------------------------------------------------------
    def evaluate_batch(self, batch: RecordBatch, split: str) -> None:
        """Measure one validation / test batch of ``split`` (``val`` / ``test``); a method's hook, nothing
        here."""

    def finish_evaluation(self, split: str) -> EvaluationOutcome | None:
        """The pass's metrics, samples and report details, or ``None`` when there is nothing to report (a
        method's hook; nothing here)."""
        return None

    def answered(self, split: str) -> list[Any]:
        """The rows of the current ``split`` pass answered so far on this process, in order (read-only; the
        report writer streams them to disk per batch); none here."""
        return []

    def evaluation_so_far(self, split: str) -> EvaluationOutcome | None:
        """The outcome of the rows answered so far in a pass that was stopped (a signal), for a partial
        report; ``None`` when there is none (here: always)."""
        return None

    def validation_step(self, batch: RecordBatch, batch_idx: int) -> None:
        self.evaluate_batch(batch, "val")

    def test_step(self, batch: RecordBatch, batch_idx: int) -> None:
        self.evaluate_batch(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.end_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self.end_evaluation("test")

    def end_evaluation(self, split: str) -> None:
        """Log the pass's outcome as ``<split>/<key>`` and hand it to the report writer."""
        outcome = self.finish_evaluation(split)
        if outcome is None:
            return
        # compute() already reduced across ranks; sync_dist only averages identical values (and keeps
        # Lightning from warning about unsynced epoch-level logs).
        self.log_dict({f"{split}/{k}": v for k, v in outcome.metrics.items() if k != "n"}, sync_dist=True)
        self.eval_outcomes[split] = outcome

    def report_settings(self) -> dict[str, Any]:
        """Settings that change the numbers, for ``report.json``."""
        return {"model": self.model_spec, "dtype": self.dtype_name}


class DualPromptModule(MetacognitionModule):
    """A method measured with the dual-prompt protocol at each validation / test (``val/*``, ``report.json``).

    Hooks a subclass may extend: :meth:`evaluate` (the answers of some records, e.g. with confidence
    sources), :meth:`evaluate_batch` (what one batch adds, e.g. MetaConf's verbal confidence) and
    :meth:`extra_metrics` (numbers computed from the whole split's samples).

    Args:
        evaluation: dual-prompt evaluation settings (grading, yes/no rule, chat templates, token budgets).
        dprime_correction: how d'type2 handles hit / false-alarm rates of 0 or 1: ``clip`` to [1e-4, 1-1e-4]
            (as ESMA) or ``loglinear`` ((count + 0.5) / (n + 1)).
        (model, dtype, optimizer, lr_scheduler: see ``MetacognitionModule``)
    """

    def __init__(
        self,
        evaluation: EvalSettings | None = None,
        dprime_correction: Literal["clip", "loglinear"] = "clip",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        settings = self.record_settings("evaluation", evaluation, EvalSettings, EvalSettings())
        self.evaluation = DualPromptEvaluation(settings, dprime_correction)

    @property
    def eval_settings(self) -> EvalSettings:
        """The dual-prompt evaluation settings."""
        return self.evaluation.settings

    def evaluate(self, records) -> list[SampleResult]:
        """Dual-prompt results of ``records`` with this module's model and settings."""
        with self.generation_context():
            return self.evaluation.answer(self.model, self.tokenizer, records, self.synced_generation())

    def evaluate_batch(self, batch: RecordBatch, split: str) -> None:
        """Answer the batch's questions and add them (padding rows left out) to the split's metrics and
        samples."""
        self.evaluation.record(split, self.evaluate(batch.records), keep=[not pad for pad in batch.padding])

    def extra_metrics(
        self, split: str, samples: list[SampleResult]
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Metrics beyond the registry's, computed from every rank's samples (logged as ``<split>/<key>``),
        and report details (e.g. threshold sweeps); empty here."""
        return {}, {}

    def finish_evaluation(self, split: str) -> EvaluationOutcome | None:
        """The split's registry metrics plus :meth:`extra_metrics`, its samples and row counts (``None``
        during Lightning's sanity check)."""
        values, samples = self.evaluation.finish(split)
        if self.trainer.sanity_checking:
            return None
        if not samples:
            raise DataError(
                f"the {split} pass evaluated no rows (n = 0): check the data source, max_samples, "
                f"limit_{'val' if split == 'val' else 'test'}_batches and (API models) on_failure"
            )
        return self._outcome(split, values, samples)

    def answered(self, split: str) -> list[SampleResult]:
        return self.evaluation.samples[split]

    def evaluation_so_far(self, split: str) -> EvaluationOutcome | None:
        so_far = self.evaluation.so_far(split)
        return None if so_far is None else self._outcome(split, *so_far)

    def _outcome(
        self, split: str, values: dict[str, float], samples: list[SampleResult]
    ) -> EvaluationOutcome:
        extra, details = self.extra_metrics(split, samples)
        values.update(extra)
        return EvaluationOutcome(
            split, self.global_step, self.current_epoch, values, samples, {**row_counts(samples), **details}
        )

    def report_settings(self) -> dict[str, Any]:
        return {**super().report_settings(), **self.evaluation.describe(self.tokenizer)}


class EvalModule(DualPromptModule):
    """Measurement only (no training): use with ``cli.py validate`` / ``cli.py test``."""
