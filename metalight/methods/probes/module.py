"""``ProbeModule``: the activation probes of LLM Neurofeedback (arXiv 2505.13763, upstream ``main_prep.py``).

    features  = pooled residual stream of each labelled chat at each chosen layer (cached on disk)
    PC axes   = principal components 1, 2, 4, 8, 32, 128, 512 of the centred train features (closed form)
    LR axis   = per-layer linear head w·x + b on the dataset labels, trained here by gradient descent:
                loss = BCE(w·z + b, y) + l2/2 · |w|²  on standardised features z (mean over layers)
    scores    = axis projection / train std; neural label = score ≥ 0

Fit writes ``probes.safetensors`` (reload with :meth:`ProbeSet.load`), ``probe_report.json`` (accuracy and
AUROC per split, layer and axis) and ``examples.jsonl`` (held-out chats with their scores, the input of the
report and control experiments) into the run directory. Validation logs ``val/layer<l>/<axis>_accuracy`` and
``_auroc``. The language model is frozen and kept out of checkpoints (they hold the heads only).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn
from torch.nn import functional as F

from metalight.callbacks.report_writer import run_dir
from metalight.data.records import RecordBatch
from metalight.io import atomic_write_json, atomic_write_jsonl
from metalight.methods.base import MetacognitionModule
from metalight.methods.probes.axes import (
    PAPER_PCS,
    ProbeSet,
    available_pcs,
    check_labels,
    linear_axis,
    pca_axes,
)
from metalight.methods.probes.cache import FeatureCache, model_fingerprint
from metalight.methods.probes.extraction import Span, check_layers, decoder_blocks, statement_span_text
from metalight.methods.probes.optim import ProbeAdam
from metalight.methods.probes.scores import ProbeScores, flatten_metrics, probe_metrics
from metalight.models.embedded import cache_root
from metalight.models.modes import eval_mode
from metalight.prompts import NEUROFEEDBACK_PROMPT_VERSION, NF_SYSTEM_PROMPT

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


class ProbeModule(MetacognitionModule):
    """Fits PC and logistic-regression axes on hidden states of labelled statements (see module docstring).

    Args:
        layers: blocks to probe (0-based; layer l = HF ``hidden_states[l + 1]``); ``None`` = every block.
        span: token pooling: ``response`` (mean over the assistant response, upstream's default),
            ``response_to_end``, ``last`` or ``all``.
        pcs: principal components to keep as axes (1-based); those needing more train rows are skipped.
        l2: weight of the L2 penalty l2/2·|w|² on the standardised LR weights (per layer).
        optimizer: the optimizer of the LR heads (default ``ProbeAdam``: Adam, lr 1e-2).
        lr_scheduler: the heads' learning-rate schedule, stepped per optimizer step (default: none).
        system_prompt: system message of each statement chat (upstream: "You are a helpful assistant.").
        extract_batch_size: chats per forward pass during extraction.
        max_tokens: chats longer than this keep their last tokens (an error if that cuts the response).
        cache_dir: root of the feature cache (default ``$METALIGHT_CACHE/probes``).
        (other args: see ``MetacognitionModule``)
    """

    def __init__(
        self,
        layers: list[int] | None = None,
        span: Span = "response",
        # The list default is what LightningCLI shows; it is copied (list(pcs)), never mutated.
        pcs: list[int] = list(PAPER_PCS),  # noqa: B006
        l2: float = 1e-3,
        optimizer: OptimizerCallable = ProbeAdam,
        lr_scheduler: LRSchedulerCallable | None = None,
        system_prompt: str | None = NF_SYSTEM_PROMPT,
        extract_batch_size: int = 16,
        max_tokens: int | None = 512,
        cache_dir: str | None = None,
        **kwargs,
    ):
        super().__init__(optimizer=optimizer, lr_scheduler=lr_scheduler, **kwargs)
        self.layer_choice, self.span, self.pcs = layers, span, list(pcs)
        self.l2, self.system_prompt = l2, system_prompt
        self.extract_batch_size, self.max_tokens = extract_batch_size, max_tokens
        self.cache = FeatureCache(cache_dir or cache_root() / "probes")
        self.layers: list[int] = []
        self.features: dict[str, Tensor] = {}  # split -> [L, n, d]
        self.labels: dict[str, Tensor] = {}
        self.records: dict[str, list[Any]] = {}
        self.row_of: dict[str, dict[str, int]] = {}
        self.pc_axes: tuple[Tensor, Tensor, Tensor] | None = None  # [L, P, d], [L, P], [L, P]
        self.kept_pcs: list[int] = []
        self._current: ProbeSet | None = None
        self._fingerprint: str | None = None
        self.probe_scores = nn.ModuleDict({split: ProbeScores() for split in ("val", "test")})
        self.strict_loading = False  # checkpoints hold the heads, not the frozen language model

    # ---- model ------------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        """Load and freeze the language model; create one linear head per probed layer."""
        if self.model is not None:
            return
        super().configure_model()
        self.model.requires_grad_(False)
        self._fingerprint = model_fingerprint(self.model)
        n_blocks = len(decoder_blocks(self.model))
        self.layers = check_layers(
            self.model, self.layer_choice if self.layer_choice is not None else list(range(n_blocks))
        )
        dim = self.model.config.hidden_size
        self.head_weight = nn.Parameter(torch.zeros(len(self.layers), dim, device=self.device))
        self.head_bias = nn.Parameter(torch.zeros(len(self.layers), device=self.device))
        self.register_buffer("feature_mean", torch.zeros(len(self.layers), dim, device=self.device))
        self.register_buffer("feature_std", torch.ones(len(self.layers), dim, device=self.device))

    def optimizer_parameters(self) -> list[nn.Parameter]:
        """The linear heads (the language model is frozen)."""
        return [self.head_weight, self.head_bias]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = {k: v for k, v in state.items() if not k.startswith("model.")}

    # ---- features ---------------------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        self.prepare_features()

    def prepare_features(self) -> None:
        """Extract (or read from the cache) each split's features; fit the PC axes and the standardisation."""
        datamodule = self.trainer.datamodule
        name = getattr(datamodule, "describe_name", lambda: type(datamodule).__name__)()
        with eval_mode(self.model):
            for split in SPLITS:
                records = datamodule.records(split)
                self.records[split] = records
                self.row_of[split] = {r.id: i for i, r in enumerate(records)}
                labels = [r.label for r in records]
                self.labels[split] = torch.tensor(labels, dtype=torch.long, device=self.device)
                self.features[split] = self._features(records, f"{name}-{split}")
        check_labels(self.labels["train"])
        train = self.features["train"]
        self.feature_mean.copy_(train.mean(1))
        self.feature_std.copy_(train.std(1).clamp_min(1e-6))
        self.kept_pcs = available_pcs(self.pcs, train.shape[1], train.shape[2])
        skipped = sorted(set(self.pcs) - set(self.kept_pcs))
        if skipped:
            log.warning(
                "PCs %s need more than %d train rows (or features) and are skipped", skipped, train.shape[1]
            )
        if self.kept_pcs:
            fitted = [pca_axes(train[i], self.kept_pcs) for i in range(len(self.layers))]
            self.pc_axes = tuple(torch.stack(parts).to(self.device) for parts in zip(*fitted))

    def _features(self, records: list[Any], dataset: str) -> Tensor:
        if not records:
            return torch.empty(len(self.layers), 0, self.model.config.hidden_size, device=self.device)
        items = [
            statement_span_text(self.tokenizer, r.user_prompt, r.response, self.system_prompt)
            for r in records
        ]
        features = self.cache.features(
            self.model,
            self.tokenizer,
            self.model_spec,
            dataset,
            items,
            [r.id for r in records],
            self.layers,
            self.span,
            self.extract_batch_size,
            self.max_tokens,
        )
        return torch.stack([features[layer] for layer in self.layers]).to(self.device)

    def _rows(self, split: str, batch: RecordBatch) -> Tensor:
        return torch.tensor([self.row_of[split][r.id] for r in batch.records], device=self.device)

    # ---- training: the LR heads ---------------------------------------------------------------------------
    def training_step(self, batch: RecordBatch, batch_idx: int) -> Tensor:
        rows = self._rows("train", batch)
        z = (self.features["train"][:, rows] - self.feature_mean[:, None]) / self.feature_std[:, None]
        logits = torch.einsum("lbd,ld->lb", z, self.head_weight) + self.head_bias[:, None]
        targets = self.labels["train"][rows].float().expand_as(logits)
        bce = F.binary_cross_entropy_with_logits(logits, targets)
        loss = bce + 0.5 * self.l2 * self.head_weight.pow(2).sum(-1).mean()
        self.log_dict({"train/loss": loss, "train/bce": bce}, prog_bar=True, batch_size=len(rows))
        return loss

    # ---- the probe set ----------------------------------------------------------------------------------
    def probe_set(self) -> ProbeSet:
        """The current axes of every layer: ``lr`` then ``pc<k>`` for the kept PCs."""
        weight = (self.head_weight / self.feature_std).detach()
        bias = (self.head_bias - (self.head_weight * self.feature_mean / self.feature_std).sum(-1)).detach()
        parts = [linear_axis(weight[i], bias[i], self.features["train"][i]) for i in range(len(self.layers))]
        directions, offsets, scales = (torch.stack(p)[:, None] for p in zip(*parts))
        if self.pc_axes is not None:
            directions = torch.cat([directions, self.pc_axes[0]], 1)
            offsets = torch.cat([offsets, self.pc_axes[1]], 1)
            scales = torch.cat([scales, self.pc_axes[2]], 1)
        meta = {
            "model_spec": self.model_spec,
            "model_dtype": self.dtype_name,
            "model_fingerprint": self._fingerprint,
            "span": self.span,
            "system_prompt": self.system_prompt,
            "prompt_version": NEUROFEEDBACK_PROMPT_VERSION,
            "n_train": int(self.features["train"].shape[1]),
            "l2": self.l2,
            "skipped_pcs": sorted(set(self.pcs) - set(self.kept_pcs)),
        }
        axes = ["lr"] + [f"pc{k}" for k in self.kept_pcs]
        return ProbeSet(list(self.layers), axes, directions.cpu(), offsets.cpu(), scales.cpu(), meta)

    def split_scores(self, probes: ProbeSet, split: str, rows: Tensor | None = None) -> Tensor:
        """Scores ``[n, L, A]`` of a split's rows (all rows by default)."""
        features = self.features[split] if rows is None else self.features[split][:, rows]
        return probes.score({layer: features[i].cpu() for i, layer in enumerate(self.layers)})

    # ---- evaluation -------------------------------------------------------------------------------------
    def evaluate_batch(self, batch: RecordBatch, split: str) -> None:
        """Score the batch's statements with the current axes and add them to the split's probe metrics."""
        rows = self._rows(split, batch)
        mask = torch.tensor([not pad for pad in batch.padding])
        scores = self.split_scores(self._current, split, rows)
        self.probe_scores[split].update(scores, self.labels[split][rows].cpu(), mask)

    def on_validation_epoch_start(self) -> None:
        if not self.features:
            self.prepare_features()
        self._current = self.probe_set()

    on_test_epoch_start = on_validation_epoch_start

    def finish_evaluation(self, split: str) -> None:
        """Log accuracy and AUROC per layer and axis (``<split>/layer<l>/<axis>_*``) and the best LR axis; the
        probe report is written at the end of ``fit`` (:meth:`write_outputs`), not per pass."""
        if self.trainer.sanity_checking:
            return None
        metric = self.probe_scores[split]
        values = metric.compute()
        metric.reset()
        axes = self._current.axes
        flat = flatten_metrics(values, self.layers, axes, prefix=f"{split}/")
        lr = axes.index("lr")
        flat[f"{split}/best_lr_accuracy"] = float(values["accuracy"][:, lr].max())
        flat[f"{split}/best_lr_auroc"] = float(values["auroc"][:, lr].max())
        self.log_dict(flat, sync_dist=True)
        return None

    # ---- outputs ----------------------------------------------------------------------------------------
    def on_fit_end(self) -> None:
        out = run_dir(self.trainer)  # a collective call under DDP: every rank must make it
        if self.trainer.is_global_zero:
            self.write_outputs(out)

    def write_outputs(self, out: Path | None = None) -> dict[str, Any]:
        """Write ``probes.safetensors``, ``probe_report.json`` and ``examples.jsonl`` into ``out`` (default:
        the run directory, a collective call under DDP)."""
        out = run_dir(self.trainer) if out is None else out
        probes = self.probe_set()
        report: dict[str, Any] = {
            "layers": probes.layers,
            "axes": probes.axes,
            **probes.meta,
            "dataset": self.trainer.datamodule.describe_name(),
            "splits": {},
        }
        examples = []
        for split in SPLITS:
            if not self.records[split]:
                continue
            scores = self.split_scores(probes, split)
            values = probe_metrics(scores, self.labels[split].cpu())
            report["splits"][split] = {
                "n": len(self.records[split]),
                **{name: table.tolist() for name, table in values.items()},
            }
            if split != "train":
                examples += [
                    {
                        "split": split,
                        "id": r.id,
                        "user_prompt": r.user_prompt,
                        "response": r.response,
                        "label": r.label,
                        "scores": scores[i].tolist(),
                    }
                    for i, r in enumerate(self.records[split])
                ]
        probes.metrics = report["splits"]
        probes.save(out / "probes.safetensors")
        atomic_write_json(out / "probe_report.json", report)
        atomic_write_jsonl(out / "examples.jsonl", examples)
        log.info("probes written to %s", out)
        return report

    def report_settings(self) -> dict[str, Any]:
        return {
            "model": self.model_spec,
            "dtype": self.dtype_name,
            "layers": self.layers,
            "span": self.span,
            "pcs": self.kept_pcs,
            "l2": self.l2,
            "prompt_version": NEUROFEEDBACK_PROMPT_VERSION,
        }
