"""``ICMModule``: Internal Coherence Maximization (Wen et al. 2025, "Unsupervised Elicitation of Language
Models", arXiv 2506.10139) — label a dataset with no supervision, from the model's own coherence.

    chunks = make_chunks(train claims, chunk_size)       # whole consistency groups, seeded order
    for chunk j:                                          # one training_step = one annealing step
        search = ICMSearch(chunk, testbed rule, MutualPredictability(model, prompts))
        K steps: pick -> propose -> consistency fix -> accept with exp(ΔU / T)
        agreement with gold of the labels, beside zero-shot / random / gold-label demonstrations
        [finetune: model <- fine-tune(initial model, labels of chunks 1..j)]

No gradients: the state is the label vector, checkpointed with the temperature index, the step and the random
state (model weights are not written: they never change, and a fine-tuned model is saved by its spec), so
``fit --ckpt_path`` resumes a search exactly. A no-op optimizer counts annealing steps so Lightning's
``global_step``, logging and step-based checkpoints work. Outputs in the run directory: ``icm/labels.jsonl``
(one line per labelled claim) and ``report.json``; both are rewritten atomically after every chunk.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import torch

from metalight.api.completions_logprobs import CompletionsEndpoint
from metalight.api.transport import require_key
from metalight.callbacks.report_writer import run_dir, write_report
from metalight.data.records import RecordBatch
from metalight.errors import ConfigError
from metalight.io import atomic_write_jsonl
from metalight.methods.base import MetacognitionModule
from metalight.methods.icm.agreement import (
    METHODS,
    Agreement,
    agreement,
    compare_with_baselines,
    predict,
    summarize,
)
from metalight.methods.icm.chunks import check_fits, context_limit, make_chunks
from metalight.methods.icm.consistency import rule_for
from metalight.methods.icm.endpoint_scorer import EndpointPredictability
from metalight.methods.icm.finetune import IterativeFineTuning, fine_tune_on_labels, sft_rows
from metalight.methods.icm.predictability import MutualPredictability, ScorerStats
from metalight.methods.icm.search import ICMSearch, Scheduler, SearchSettings, StepRecord
from metalight.prompts import ICM_LABEL_WORDS, ICM_PROMPT_VERSION

log = logging.getLogger(__name__)


class AnnealingStepCounter(torch.optim.Optimizer):
    """An optimizer that changes nothing: each ``step`` counts one annealing step for Lightning."""

    def __init__(self, params):
        super().__init__(params, defaults={})

    def step(self, closure=None):
        return closure() if closure is not None else None


class ICMModule(MetacognitionModule):
    """Unsupervised labelling by simulated annealing over labels (see module docstring).

    Args:
        alpha: weight of mutual predictability against the count of inconsistent pairs (upstream 30; 50 for
            TruthfulQA in its README).
        num_seed: claims labelled at random (half true) when a chunk starts.
        K: annealing steps per chunk.
        chunk_size: claims per independently-labelled chunk (upstream's ``batch_size``; whole consistency
            groups); ``None`` puts all claims in one chunk, which must fit the model's context.
        consistency_fix_K: rounds of the consistency fix per proposal.
        decay: temperature decay per accepted flip (``exp`` scheduler).
        initial_T: starting temperature.
        final_T: lowest temperature.
        scheduler: ``log`` (upstream's default) or ``exp``.
        search_seed: seed of the chunking and of every chunk's search (upstream's ``seed``: 27565976).
        label_words: the words read as true / false after each claim prompt.
        context_cache: reuse the KV cache of shared demonstration prefixes and memoise scores of unchanged
            contexts (identical numbers; ``False`` only for benchmarking).
        rows_per_forward: log-prob queries per model call.
        baselines: score zero-shot, random-label and gold-label demonstrations at the end of each chunk.
        finetune: iterative fine-tuning between chunks; ``None`` labels every chunk with the initial model.
        logprob_endpoint: score claims with a served model's top-k log-probs (OpenAI-compatible
            ``/completions``: vLLM, llama.cpp) instead of a local forward; the local ``model`` is then not
            loaded. ``None`` (default): the local model scores.
        (other args: see ``MetacognitionModule``; ICM has no ``optimizer`` / ``lr_scheduler``: its search
        changes labels, not weights, and Lightning's "optimizer" here only counts annealing steps)
    """

    def __init__(
        self,
        alpha: float = 30.0,
        num_seed: int = 8,
        K: int = 3000,
        chunk_size: int | None = 256,
        consistency_fix_K: int = 10,
        decay: float = 0.99,
        initial_T: float = 10.0,
        final_T: float = 0.01,
        scheduler: Scheduler = "log",
        search_seed: int = 27565976,
        label_words: tuple[str, str] = ICM_LABEL_WORDS,
        context_cache: bool = True,
        rows_per_forward: int = 8,
        baselines: bool = True,
        finetune: IterativeFineTuning | None = None,
        logprob_endpoint: CompletionsEndpoint | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if self.optimizer_factory is not None or self.lr_scheduler_factory is not None:
            raise ConfigError(
                "ICMModule searches labels and trains no weights: remove model.init_args.optimizer "
                "and lr_scheduler (iterative fine-tuning has its own settings under finetune:)"
            )
        self.automatic_optimization = False
        self.strict_loading = False  # checkpoints leave out the (unchanged) model weights
        self.settings = SearchSettings(
            alpha, num_seed, K, consistency_fix_K, decay, initial_T, final_T, scheduler
        )
        self.settings.check()
        self.chunk_size, self.seed, self.label_words = chunk_size, search_seed, tuple(label_words)
        self.context_cache, self.rows_per_forward, self.baselines = context_cache, rows_per_forward, baselines
        self.finetune = self.record_settings("finetune", finetune, IterativeFineTuning)
        self.endpoint = self.record_settings("logprob_endpoint", logprob_endpoint, CompletionsEndpoint)
        if self.endpoint is not None:  # checked now, before config.yaml is written
            require_key(self.endpoint.api_key_env, "model.init_args.logprob_endpoint.api_key_env")
        if self.endpoint is not None and self.finetune is not None:
            raise ConfigError(
                "ICM: finetune needs the local model's weights, but logprob_endpoint scores with a "
                "served model; drop one of model.init_args.finetune / logprob_endpoint"
            )
        self.initial_model = self.model_spec
        self.register_buffer("annealing_steps", torch.zeros(1), persistent=False)
        self.records: list[Any] = []
        self.prompts: list[str] = []
        self.chunks: list[list[int]] = []
        self.chunk_index = 0
        self.finished: list[dict[str, Any]] = []
        self.search: ICMSearch | None = None
        self.scorer: MutualPredictability | None = None
        self.proposals: list[StepRecord] = []
        self.work = ScorerStats()
        self._restored_search: dict | None = None

    def configure_model(self) -> None:
        """Load the local model, unless a log-prob endpoint does the scoring."""
        if self.endpoint is None:
            super().configure_model()

    def configure_optimizers(self):
        return AnnealingStepCounter([self.annealing_steps])

    # ---- data ---------------------------------------------------------------------------------------------
    def _datamodule(self):
        datamodule = self.trainer.datamodule
        if not hasattr(datamodule, "render") or not hasattr(datamodule, "testbed"):
            raise ConfigError(
                f"ICMModule needs a claim DataModule (metalight.data.claims.ClaimDataModule), got "
                f"{type(datamodule).__name__}; use e.g. GSM8KVerificationDataModule"
            )
        return datamodule

    def on_fit_start(self) -> None:
        if self.trainer.world_size > 1:
            raise ConfigError("ICM's search is sequential: run it on one device (trainer.devices: 1)")
        datamodule = self._load_claims()
        if not self.records:
            raise ConfigError(f"{type(datamodule).__name__}: the train split has no claims to label")
        self.chunks = make_chunks([r.consistency_id for r in self.records], self.chunk_size, self.seed)
        if self.endpoint is not None:
            return  # the server knows its context length and answers an over-long prompt with an error
        limit = context_limit(self.model, self.tokenizer)
        for chunk in self.chunks:
            needed = self._scorer(chunk).max_context_tokens()
            check_fits(needed, limit, len(chunk), len(self.records), self.chunk_size)

    def _load_claims(self):
        """The train claims (the data ICM labels), their prompts and the testbed's rule."""
        datamodule = self._datamodule()
        self.rule = rule_for(datamodule.testbed)
        self.records = datamodule.records("train")
        self.prompts = [datamodule.render(r) for r in self.records]
        return datamodule

    def _scorer(self, chunk: list[int]) -> MutualPredictability | EndpointPredictability:
        return self._scorer_for([self.prompts[i] for i in chunk])

    def _scorer_for(self, prompts: list[str]) -> MutualPredictability | EndpointPredictability:
        """A scorer of ``prompts``: the log-prob endpoint when one is set, else the local model."""
        if self.endpoint is not None:
            return EndpointPredictability(self.endpoint, prompts, self.label_words)
        return MutualPredictability(
            self.model,
            self.tokenizer,
            prompts,
            self.label_words,
            context_cache=self.context_cache,
            rows_per_forward=self.rows_per_forward,
        )

    # ---- the search ----------------------------------------------------------------------------------------
    def training_step(self, batch: RecordBatch, batch_idx: int) -> None:
        """One annealing step of the current chunk (the batch only paces the loop; the chunk is the data)."""
        if self.chunk_index >= len(self.chunks):
            self.trainer.should_stop = True
            return
        if self.search is None:
            self._start_chunk()
        if self.search.step_index < self.settings.K:
            record = self.search.step()
            self.proposals.append(record)
            self._log_step(record)
        self.optimizers().step()
        if self.search.step_index >= self.settings.K:
            self._finish_chunk()

    def _start_chunk(self) -> None:
        chunk = self.chunks[self.chunk_index]
        self.scorer = self._scorer(chunk)
        self.search = ICMSearch(
            [self.records[i].consistency_id for i in chunk],
            [self.records[i].consistency_key for i in chunk],
            self.rule,
            self.scorer,
            self.settings,
            seed=self.seed + self.chunk_index,
        )
        if self._restored_search is not None:
            self.search.load_state_dict(self._restored_search)
            self._restored_search = None
        else:
            self.search.initialize()

    def _gold(self, chunk: list[int]) -> list[int | None]:
        return [self.records[i].label for i in chunk]

    def _log_step(self, record: StepRecord) -> None:
        search, current = self.search, self.search.current
        labelled = sum(label is not None for label in search.labels)
        values = {
            "energy": current.value,
            "mutual_predictability": current.mutual_predictability,
            "inconsistent": float(current.inconsistent),
            "temperature": record.temperature,
            "accepted": float(record.accepted),
            "flips": float(search.flips),
            "labelled_fraction": labelled / search.n,
            "chunk": float(self.chunk_index),
            "logprob_queries": float(self.work.queries + self.scorer.stats.queries),
            "model_rows": float(self.work.computed + self.scorer.stats.computed),
        }
        agree = agreement(search.labels, self._gold(self.chunks[self.chunk_index]))
        if agree.total:
            values["agreement"] = agree.accuracy
        self.log_dict({f"train/{k}": v for k, v in values.items()}, on_step=True, on_epoch=False)

    def _finish_chunk(self) -> None:
        chunk, search = self.chunks[self.chunk_index], self.search
        methods = METHODS if self.baselines else ("icm",)
        results = compare_with_baselines(
            self.scorer,
            search.labels,
            self._gold(chunk),
            seed=self.seed + 7919 * (self.chunk_index + 1),
            methods=methods,
        )
        for key, value in vars(self.scorer.stats).items():
            setattr(self.work, key, getattr(self.work, key) + value)
        self.finished.append(
            {
                "index": self.chunk_index,
                "claims": len(chunk),
                "steps": search.step_index,
                "flips": search.flips,
                "energy": search.current.value,
                "mutual_predictability": search.current.mutual_predictability,
                "inconsistent": search.current.inconsistent,
                "evaluations": search.evaluations,
                "labelled": sum(label is not None for label in search.labels),
                "model": self.model_spec,
                "agreement": {m: {"correct": a.correct, "total": a.total} for m, a in results.items()},
                "labels": [[self.records[i].id, label] for i, label in zip(chunk, search.labels)],
            }
        )
        self.log_dict(
            {f"train/chunk_agreement_{m}": a.accuracy for m, a in results.items() if a.total},
            on_step=True,
            on_epoch=False,
        )
        self.write_outputs()
        self.chunk_index += 1
        self.search = self.scorer = None
        if self.chunk_index >= len(self.chunks):
            self.trainer.should_stop = True
        elif self.finetune is not None:
            self._fine_tune()

    def _fine_tune(self) -> None:
        """M_j = the initial model fine-tuned on the labels of chunks 1..j; it labels chunk j+1."""
        index = {r.id: i for i, r in enumerate(self.records)}
        pairs = [
            (self.prompts[index[claim_id]], label)
            for chunk in self.finished
            for claim_id, label in chunk["labels"]
        ]
        rows = sft_rows([p for p, _ in pairs], [label for _, label in pairs], self.label_words)
        settings = replace(self.finetune, dtype=self.finetune.dtype or self.dtype_name)
        self.model = None  # the fine-tune loads its own copy; free this one first (a large model fits once)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        spec = fine_tune_on_labels(
            settings, self.initial_model, rows, run_dir(self.trainer), self.chunk_index
        )
        self._load_model(spec)

    def _load_model(self, spec: str) -> None:
        if spec != self.model_spec or self.model is None:
            self.model_spec, self.model = spec, None
            self.configure_model()

    # ---- outputs ------------------------------------------------------------------------------------------
    def icm_report(self) -> dict[str, Any]:
        """The run's results so far: pooled agreement per method, per-chunk details, settings, work done."""
        pooled = summarize(
            {m: Agreement(a["correct"], a["total"]) for m, a in c["agreement"].items()} for c in self.finished
        )
        datamodule = self.trainer.datamodule
        return {
            "method": "icm",
            "testbed": datamodule.testbed,
            "dataset": datamodule.describe_name(),
            "model": self.initial_model,
            "final_model": self.model_spec,
            "prompt_version": ICM_PROMPT_VERSION,
            "claims": len(self.records),
            "chunks_total": len(self.chunks),
            "chunks_done": len(self.finished),
            "complete": len(self.finished) == len(self.chunks),
            "agreement": {m: a.accuracy for m, a in pooled.items()},
            "agreement_counts": {m: {"correct": a.correct, "total": a.total} for m, a in pooled.items()},
            "settings": {
                **vars(self.settings),
                "chunk_size": self.chunk_size,
                "search_seed": self.seed,
                "label_words": list(self.label_words),
                "context_cache": self.context_cache,
                "rule": type(self.rule).__name__,
                "finetune": None if self.finetune is None else vars(self.finetune),
                "logprob_endpoint": None
                if self.endpoint is None
                else {
                    "url": self.endpoint.url,
                    "model": self.endpoint.model,
                    "top_logprobs": self.endpoint.top_logprobs,
                },
            },
            "work": self.work.as_dict(),
            "global_step": self.global_step,
            "chunks": [{k: v for k, v in c.items() if k != "labels"} for c in self.finished],
        }

    def write_outputs(self) -> None:
        """``icm/labels.jsonl`` and ``report.json`` in the run directory, atomically."""
        out = run_dir(self.trainer)
        by_id = {r.id: r for r in self.records}
        rows = [
            {
                "id": claim_id,
                "label": label,
                "gold": by_id[claim_id].label,
                "chunk": c["index"],
                "consistency_id": by_id[claim_id].consistency_id,
                "consistency_key": by_id[claim_id].consistency_key,
            }
            for c in self.finished
            for claim_id, label in c["labels"]
        ]
        atomic_write_jsonl(out / "icm" / "labels.jsonl", rows)
        write_report(out, self.icm_report())

    # ---- held-out evaluation: many-shot prediction with ICM's labels as demonstrations ---------------------
    def evaluate_batch(self, batch: RecordBatch, split: str) -> None:
        """Label held-out claims with the last labelled chunk in context (ICM labels vs gold labels vs none);
        the accuracies are logged per batch as ``<split>/accuracy_<context>`` (averaged by Lightning)."""
        queries = batch.real_records
        if not self.records:  # validate / test straight from a checkpoint: fit never loaded the claims
            self._load_claims()
        demos = self.finished[-1]["labels"] if self.finished else []
        by_id = {r.id: r for r in self.records}
        demo_records = [by_id[claim_id] for claim_id, label in demos if label is not None]
        icm_labels = [label for _, label in demos if label is not None]
        datamodule = self._datamodule()
        scorer = self._scorer_for([datamodule.render(r) for r in demo_records + list(queries)])
        positions = list(range(len(demo_records), len(demo_records) + len(queries)))
        gold = [r.label for r in queries]
        contexts = {"zero_shot": [None] * len(demo_records)}
        if demo_records:
            contexts["icm_demos"] = icm_labels
            if all(r.label is not None for r in demo_records):
                contexts["gold_demos"] = [r.label for r in demo_records]
        for name, context in contexts.items():
            result = agreement(predict(scorer, context + [None] * len(queries), positions), gold)
            if result.total:
                self.log(f"{split}/accuracy_{name}", result.accuracy, batch_size=result.total)

    # ---- checkpoints -------------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {
            k: v for k, v in checkpoint["state_dict"].items() if not k.startswith("model.")
        }
        checkpoint["icm"] = {
            "claim_ids": [r.id for r in self.records],
            "chunk_index": self.chunk_index,
            "finished": self.finished,
            "model_spec": self.model_spec,
            "work": self.work.as_dict(),
            "search": None if self.search is None else self.search.state_dict(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("icm")
        if state is None:
            raise ConfigError("this checkpoint holds no ICM state; resume an ICM run from its own checkpoint")
        self._checkpoint_ids = state["claim_ids"]
        self.chunk_index, self.finished = state["chunk_index"], state["finished"]
        self.work = ScorerStats(**state["work"])
        self._restored_search = state["search"]
        if self.model is not None:
            self._load_model(state["model_spec"])
        else:
            self.model_spec = state["model_spec"]

    def on_train_start(self) -> None:
        expected = getattr(self, "_checkpoint_ids", None)
        if expected is not None and expected != [r.id for r in self.records]:
            raise ConfigError(
                "the checkpoint was made on different claims; resume with the same data, split and "
                "max_samples"
            )
