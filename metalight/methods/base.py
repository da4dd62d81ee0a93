"""``MetacognitionModule``: every method is trained differently, but every model is measured the same way.

The base class owns the causal LM, its tokenizer, and the dual-prompt evaluation with the type-2 /
calibration metrics (``validation_step`` / ``test_step``). Method subclasses add only their training step.
``EvalModule`` is the base with nothing added: ``python cli.py validate --config configs/eval/....yaml``
measures any model.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
import torch.distributed as dist
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from metalight.data.records import RecordBatch
from metalight.errors import ConfigError, DataError
from metalight.evaluation.dual_prompt import EvalSettings, SampleResult, evaluate_records, results_to_tensors
from metalight.methods.optim import WarmupDecay, factory_from_settings, factory_settings
from metalight.metrics import MetacognitionMetrics
from metalight.models.loading import DTypeName, load_model
from metalight.models.sharding import full_params_for_generation

log = logging.getLogger(__name__)

DEFAULT_MODEL = "embedded:smollm2-135m-instruct"
EVAL_SPLITS = ("val", "test")


@dataclass
class EvaluationOutcome:
    """The result of one evaluation pass over a split: metric values and per-question samples."""

    split: str
    step: int
    epoch: int
    metrics: dict[str, float]
    samples: list[SampleResult] = field(repr=False)
    details: dict[str, Any] = field(default_factory=dict, repr=False)


def gather_objects(items: list[Any]) -> list[Any]:
    """Concatenate a list from every process (identity outside distributed runs)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        parts: list[list[Any] | None] = [None] * dist.get_world_size()
        dist.all_gather_object(parts, items)
        return [item for part in parts for item in part]
    return items


def row_counts(samples: list[SampleResult]) -> dict[str, int]:
    """Rows whose inputs or grading deserve a look, for ``report.json``: prompts cut to ``max_input_tokens``
    (``truncated_rows``) and answers credited only through a weak alias (``suspect_matches``)."""
    return {"truncated_rows": sum(bool(getattr(s, "prompt_truncated", False)) for s in samples),
            "suspect_matches": sum(bool(getattr(s, "suspect_match", False)) for s in samples)}


class MetacognitionModule(LightningModule):
    """Base of every method: a causal LM measured with the dual-prompt protocol at each validation.

    Args:
        model: model spec: a hub id, a local directory, a ``.gguf`` file, or ``embedded:smollm2-135m-instruct``.
        dtype: parameter dtype the model is loaded in (``float32`` is the fast path on CPU).
        evaluation: dual-prompt evaluation settings (grading, yes/no rule, chat templates, token budgets).
        dprime_correction: how d'type2 handles hit / false-alarm rates of 0 or 1: ``clip`` to [1e-4, 1-1e-4]
            (as ESMA) or ``loglinear`` ((count + 0.5) / (n + 1)).
        optimizer: builds the optimizer from the trainable parameters (``class_path`` + ``init_args`` in a
            config; the learning rate is its ``lr``). Each training method defaults to its own class in
            ``metalight.methods.optim``; ``None`` here: a measurement-only module, which cannot be fitted.
        lr_scheduler: builds a learning-rate schedule from the optimizer, stepped once per optimizer step
            (``None``: a constant learning rate).
    """

    def __init__(self, model: str = DEFAULT_MODEL, dtype: DTypeName = "float32",
                 evaluation: EvalSettings | None = None, dprime_correction: Literal["clip", "loglinear"] = "clip",
                 optimizer: OptimizerCallable | None = None, lr_scheduler: LRSchedulerCallable | None = None):
        super().__init__()
        # The factories are recorded as plain class_path / init_args data (checkpoints load with weights_only).
        self.save_hyperparameters(ignore=["evaluation", "optimizer", "lr_scheduler"])
        self.optimizer_factory = factory_from_settings(optimizer)
        self.lr_scheduler_factory = factory_from_settings(lr_scheduler)
        self.hparams["optimizer"] = factory_settings(optimizer)
        self.hparams["lr_scheduler"] = factory_settings(lr_scheduler)
        self.eval_settings = (EvalSettings() if evaluation is None else evaluation).check()
        self.hparams["evaluation"] = asdict(self.eval_settings)
        self.model_spec, self.dtype_name = model, dtype
        self.model: nn.Module | None = None
        self.tokenizer = None
        self.metrics = nn.ModuleDict({split: MetacognitionMetrics(dprime_correction=dprime_correction)
                                      for split in EVAL_SPLITS})
        self.eval_outcomes: dict[str, EvaluationOutcome] = {}
        self._samples: dict[str, list[SampleResult]] = {split: [] for split in EVAL_SPLITS}

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

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        """Record batches hold text, not tensors: they stay where they are."""
        if isinstance(batch, RecordBatch):
            return batch
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    # ---- optimisation -----------------------------------------------------------------------------------
    def optimizer_parameters(self) -> list[Any]:
        """What the optimizer steps: every trainable parameter (a subclass may return param groups)."""
        return [p for p in self.parameters() if p.requires_grad]

    def configure_optimizers(self):
        """``optimizer`` over :meth:`optimizer_parameters`, with ``lr_scheduler`` stepped every optimizer step."""
        if self.optimizer_factory is None:
            raise ConfigError(f"{type(self).__name__} has no optimizer: it only measures (use cli.py validate or "
                              f"test), or set model.init_args.optimizer")
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
            raise ConfigError("model.init_args.lr_scheduler (WarmupDecay) spans the whole run, but the run has no end "
                              "(trainer.max_steps: -1 and max_epochs: -1): set one of them, or "
                              "lr_scheduler.init_args.total_steps, or lr_scheduler: null for a constant lr")
        return int(steps)

    def optimizer_settings(self) -> dict[str, Any] | None:
        """The optimizer as configured, for reports: ``{"class_path", "init_args"}`` (the ``lr`` among them)."""
        return self.hparams.get("optimizer")

    # ---- evaluation -------------------------------------------------------------------------------------
    def generation_context(self):
        """Context for ``generate`` calls: gathers FSDP root parameters when the model is FSDP-wrapped."""
        trainer = self._trainer
        return full_params_for_generation(trainer.strategy.model if trainer is not None else None)

    def evaluate(self, records) -> list[SampleResult]:
        """Dual-prompt evaluation of ``records`` with this module's settings (model in eval mode)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with self.generation_context():
                return evaluate_records(self.model, self.tokenizer, records, self.eval_settings,
                                        synced_gpus=self.synced_generation())
        finally:
            self.model.train(was_training)

    def _evaluation_step(self, batch: RecordBatch, split: str) -> None:
        self._record(split, self.evaluate(batch.records), keep=[not pad for pad in batch.padding])

    def _record(self, split: str, results: list[SampleResult], keep: list[bool]) -> None:
        """Add the kept results of one batch to the split's metrics and samples."""
        tensors = {k: v.to(self.device) for k, v in results_to_tensors(results).items()}
        self.metrics[split].update(**tensors, mask=torch.tensor(keep, dtype=torch.bool, device=self.device))
        self._samples[split].extend(r for r, k in zip(results, keep) if k)

    def validation_step(self, batch: RecordBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val")

    def test_step(self, batch: RecordBatch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test")

    def _finish_evaluation(self, split: str) -> None:
        metric = self.metrics[split]
        values = {k: float(v) for k, v in metric.compute().items()}
        metric.reset()
        samples = gather_objects(self._samples[split])
        self._samples[split] = []
        if self.trainer.sanity_checking:
            return
        if not samples:
            raise DataError(f"the {split} pass evaluated no rows (n = 0): check the data source, max_samples, "
                            f"limit_{'val' if split == 'val' else 'test'}_batches and (API models) on_failure")
        extra, details = self.summarize(split, samples)
        details = {**row_counts(samples), **details}
        values.update(extra)
        # compute() already reduced across ranks; sync_dist only averages identical values (and keeps
        # Lightning from warning about unsynced epoch-level logs).
        self.log_dict({f"{split}/{k}": v for k, v in values.items() if k != "n"}, sync_dist=True)
        self.eval_outcomes[split] = EvaluationOutcome(split, self.global_step, self.current_epoch, values, samples,
                                                      details)

    def summarize(self, split: str, samples: list[SampleResult]) -> tuple[dict[str, float], dict[str, Any]]:
        """Metrics beyond the dual-prompt set, computed from every rank's samples (logged as ``<split>/<key>``),
        and report details (e.g. threshold sweeps); a subclass hook, empty here."""
        return {}, {}

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test")

    def report_settings(self) -> dict[str, Any]:
        """Settings that change the numbers, for ``report.json``."""
        return {"model": self.model_spec, "dtype": self.dtype_name,
                "dprime_correction": self.hparams.dprime_correction,
                **self.eval_settings.describe(self.tokenizer),
                **({"resume_changes": self.resume_changes} if getattr(self, "resume_changes", None) else {})}


class EvalModule(MetacognitionModule):
    """Measurement only (no training): use with ``cli.py validate`` / ``cli.py test``."""
