"""One cell of the strategy matrix in one process tree, run from the repository root:

    python -m tests.sharded.strategy_cell OUT CELL MODEL_DIR [cli args ...]

fit 2 steps -> checkpoint (sharded where the strategy shards) -> validate -> resume from the checkpoint for
one more step. ``CELL`` names the method and strategy fragment (:data:`MATRIX`, or :data:`SINGLE` for one
process); the cli args add the launch (accelerator, precision, devices, nodes). Lightning relaunches this
module once per extra rank on a node, and a multi-node launcher (Lightning's ``NODE_RANK``, ``torchrun``,
SLURM's ``srun``) starts it once per node or task, so every rank runs the same sequence and the launch cost is
paid once. Global rank 0 writes ``OUT/result.json`` (steps, validation metrics) and ``OUT/logits.pt`` (the
in-memory model's logits on a fixed input, to compare with the exported directory and with other launches).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback

from metalight.cli import main

PROBE_IDS = torch.tensor([[1, 17, 305, 42, 9, 1000]])

# SFT on 8 FanOutQA questions (2 steps of 2 per rank), 4 validation questions, 4 new tokens.
KNOWLEDGE = (
    "--config",
    "configs/sft/knowledge_quickstart.yaml",
    "--trainer.max_epochs",
    "2",
    "--data.init_args.max_samples",
    '{"train": 8, "val": 4}',
    "--data.init_args.batch_size",
    "2",
    "--data.init_args.eval_batch_size",
    "2",
    "--model.init_args.evaluation.max_new_tokens",
    "4",
    "--trainer.check_val_every_n_epoch",
    "1",
)
# lr 0 keeps the base weights, so the validation report must equal one process's exactly.
SFT_FULL = (
    *KNOWLEDGE,
    "--model.init_args.lora",
    "null",
    "--model.init_args.optimizer.lr",
    "0.0",
    "--model.init_args.export",
    "full",
)
SFT_LORA = (*KNOWLEDGE, "--model.init_args.export", "adapter")
# GRPO (MetaConf rewards), the judge answering with the same tiny model; 1 question x 2 completions per rank.
GRPO = (
    "--config",
    "configs/grpo/quickstart.yaml",
    "--model.init_args.num_generations",
    "2",
    "--model.init_args.max_completion_length",
    "4",
    "--model.init_args.verbal_max_new_tokens",
    "4",
    "--model.init_args.judge.init_args.max_new_tokens",
    "4",
    "--data.init_args.batch_size",
    "1",
    "--data.init_args.max_samples",
    '{"train": 4, "val": 2}',
    "--data.init_args.eval_batch_size",
    "1",
    "--trainer.val_check_interval",
    "null",
    "--trainer.check_val_every_n_epoch",
    "1",
)

# MetaConf stage 2 with the paper's settings (LoRA r 128 on every linear layer, gradient checkpointing, 4
# accumulation steps, clipping) and the tiny model judging locally: 2 questions x 2 completions per rank make
# one generation batch of 4 micro-batches, so the fit's 2 optimizer steps are 16 questions per rank.
METACONF = (
    "--config",
    "configs/grpo/metaconf.yaml",
    "--model.init_args.dtype",
    "float32",
    "--model.init_args.judge",
    "metalight.methods.metaconf.judge.LocalChat",
    "--model.init_args.judge.init_args.max_new_tokens",
    "4",
    "--model.init_args.judge.init_args.temperature",
    "0.0",
    "--model.init_args.num_generations",
    "2",
    "--model.init_args.max_completion_length",
    "4",
    "--model.init_args.verbal_max_new_tokens",
    "4",
    "--data.init_args.batch_size",
    "2",
    "--data.init_args.eval_batch_size",
    "1",
    "--data.init_args.max_samples",
    '{"train": 32, "val": 2}',
    "--trainer.val_check_interval",
    "null",
    "--trainer.check_val_every_n_epoch",
    "1",
)
# Know-thyself's judgment loop (full fine-tuning): 4 FanOutQA questions (2 per rank, batch 1: the fit's 2
# steps are one epoch), answers and judgments of 4 tokens re-collected at the epoch's end; the quickstart's
# validation is switched on (2 questions) so that the cell validates.
JUDGMENT = (
    "--config",
    "configs/judgment/quickstart.yaml",
    "--data.init_args.source.init_args.max_samples",
    '{"train": 4, "val": 2}',
    "--data.init_args.batch_size",
    "1",
    "--data.init_args.source.init_args.eval_batch_size",
    "1",
    "--trainer.callbacks.init_args.answers.max_new_tokens",
    "4",
    "--trainer.callbacks.init_args.judgment.max_new_tokens",
    "4",
    "--model.init_args.evaluation.max_new_tokens",
    "4",
    "--trainer.limit_val_batches",
    "1.0",
    "--trainer.num_sanity_val_steps",
    "0",
)
# ESMA (the quickstart's batched low-rank engine, antithetic pairs): 4 members (2 per rank) x 2 questions per
# step, 4 new tokens, the continuous Brier reward (a random model's binary rewards tie, and tied fitnesses
# leave the weights unchanged); its one validation (after step 12) is never reached in the 2-step fit,
# validate runs it.
ESMA = (
    "--config",
    "configs/esma/quickstart.yaml",
    "--model.init_args.population_size",
    "4",
    "--model.init_args.num_data_per_iteration",
    "2",
    "--model.init_args.reward",
    "esma_brier",
    "--model.init_args.reward_meta_readout",
    "logits",
    "--model.init_args.evaluation.max_new_tokens",
    "4",
    "--data.init_args.max_samples",
    '{"train": 8, "val": 4}',
    "--data.init_args.eval_batch_size",
    "2",
)

MATRIX = {
    "sft_full-fsdp": (SFT_FULL, "fsdp"),
    "sft_full-deepspeed_zero2": (SFT_FULL, "deepspeed_zero2"),
    "sft_full-deepspeed_zero3": (SFT_FULL, "deepspeed_zero3"),
    "sft_lora-ddp": (SFT_LORA, "ddp"),
    "sft_lora-fsdp": (SFT_LORA, "fsdp"),
    "sft_lora-deepspeed_zero3": (SFT_LORA, "deepspeed_zero3"),
    "grpo-deepspeed_zero2": (GRPO, "deepspeed_zero2"),
    "grpo-deepspeed_zero3": (GRPO, "deepspeed_zero3"),
    "metaconf-deepspeed_zero3": (METACONF, "deepspeed_zero3"),
    "judgment-fsdp": (JUDGMENT, "fsdp"),
    "judgment-deepspeed_zero3": (JUDGMENT, "deepspeed_zero3"),
    "esma-ddp": (ESMA, "ddp"),
}
# One process, no strategy: the reference of the sharded SFT cells.
SINGLE = {"sft_full-single": (SFT_FULL, None)}
# Cells also run as two nodes of one rank each (tests/sharded/test_two_nodes.py, scripts/gpu_check.py): the
# launcher (tests/sharded/nodes.py), and which node starts late (the other waits for it at the rendezvous).
TWO_NODES = {
    "esma-ddp": ("lightning", 1),
    "sft_lora-fsdp": ("torchrun", None),
    "grpo-deepspeed_zero3": ("srun", None),
}


def model_args(args: tuple[str, ...], model_dir: str | Path) -> tuple[str, ...]:
    """The arguments that put ``model_dir`` in every model slot of a cell (GRPO's judge too)."""
    extra = ("--model.init_args.model", str(model_dir))
    if any(config in args for config in ("configs/grpo/quickstart.yaml", "configs/grpo/metaconf.yaml")):
        extra += ("--model.init_args.judge.init_args.model", str(model_dir))
    return extra


class ProbeLogits(Callback):
    """At the end of training (the model still wrapped by the strategy), rank 0 saves the in-memory model's
    logits of ``PROBE_IDS`` to ``path``; every rank takes part in the sharded forward."""

    def __init__(self, path: str):
        self.path = path

    def on_train_end(self, trainer, pl_module) -> None:
        model = getattr(pl_module, "model", None)
        if model is None or not hasattr(model, "config"):
            return
        with torch.no_grad(), pl_module.generation_context():
            logits = model(input_ids=PROBE_IDS.to(pl_module.device)).logits.float().cpu()
        if trainer.is_global_zero:
            torch.save(logits, self.path)


class KillRank(Callback):
    """Global rank ``rank`` kills its own process (SIGKILL: no clean-up, as when its machine fails) once
    ``step`` optimizer steps are done; the test of a node dying mid-fit."""

    def __init__(self, rank: int, step: int):
        self.rank, self.step = rank, step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_rank == self.rank and trainer.global_step >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)


def run(out: Path, args: list[str]) -> None:
    """fit, checkpoint, validate, resume (see module docstring); also records the fit's wall time per step and
    the peak GPU memory of rank 0 (``None`` on CPU)."""
    logger = ["--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", "cell"]
    probe = [
        "--trainer.callbacks+=tests.sharded.strategy_cell.ProbeLogits",
        f"--trainer.callbacks.path={out / 'logits.pt'}",
    ]
    start = time.perf_counter()
    cli = main(
        [
            "fit",
            *args,
            *logger,
            *probe,
            "--trainer.logger.init_args.version",
            "fit",
            "--trainer.max_steps",
            "2",
        ]
    )
    trainer = cli.trainer
    step_seconds = (time.perf_counter() - start) / max(1, trainer.global_step)
    peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None
    checkpoint = out / "step2.ckpt"  # a file, or a directory of shards under FSDP (sharded) / DeepSpeed
    trainer.save_checkpoint(checkpoint)
    fit_steps = trainer.global_step
    # A fresh trainer, as `cli.py validate --ckpt_path` (reusing the fitted one under FSDP would see the
    # model without its root FSDP unit). DeepSpeed 0.19 cannot load a ZeRO-3 checkpoint into an engine without
    # an optimizer ('DeepSpeedZeRoOffload' object has no attribute '_restore_from_bit16_weights'): there the
    # configured model is validated under ZeRO-3 (in the SFT-full cells lr 0 keeps it equal to the trained
    # one).
    zero3 = "configs/strategy/deepspeed_zero3.yaml" in args
    validated = main(
        [
            "validate",
            *args,
            *logger,
            "--trainer.logger.init_args.version",
            "validate",
            *(() if zero3 else ("--ckpt_path", str(checkpoint))),
        ]
    )
    metrics = validated.trainer.callback_metrics
    resumed = main(
        [
            "fit",
            *args,
            *logger,
            "--trainer.logger.init_args.version",
            "resume",
            "--trainer.max_steps",
            "3",
            "--trainer.max_epochs",
            "-1",
            "--ckpt_path",
            str(checkpoint),
        ]
    )
    if trainer.is_global_zero:
        result = {
            "fit_steps": fit_steps,
            "resumed_steps": resumed.trainer.global_step,
            "world_size": trainer.world_size,
            "seconds_per_step_with_setup": round(step_seconds, 2),
            "peak_gpu_memory_bytes": peak,
            "strategy": type(trainer.strategy).__name__,
            "validate": {k: float(v) for k, v in metrics.items()},
        }
        (out / "result.json").write_text(json.dumps(result, indent=1))


def cell_args(name: str, model_dir: str | Path) -> list[str]:
    """The ``cli.py`` arguments of cell ``name``: its experiment, ``model_dir`` in every model slot, and its
    strategy fragment (none for a :data:`SINGLE` cell)."""
    args, fragment = {**MATRIX, **SINGLE}[name]
    return [
        *args,
        *model_args(args, model_dir),
        *(("--config", f"configs/strategy/{fragment}.yaml") if fragment else ()),
    ]


def cell_program(out: str | Path, name: str, model_dir: str | Path, *launch: str) -> list[str]:
    """What ``python`` runs for cell ``name`` into ``out`` (from the repository root), ``launch`` appended."""
    return ["-m", "tests.sharded.strategy_cell", str(out), name, str(model_dir), *launch]


def cell_command(out: str | Path, name: str, model_dir: str | Path, *launch: str) -> list[str]:
    """The command that runs cell ``name`` into ``out`` in one launch on this machine."""
    return [sys.executable, *cell_program(out, name, model_dir, *launch)]


if __name__ == "__main__":
    out, name, model_dir, *launch = sys.argv[1:]
    run(Path(out), [*cell_args(name, model_dir), *launch])
