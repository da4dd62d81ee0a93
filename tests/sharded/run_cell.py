"""One cell of the strategy matrix in one process tree: ``python tests/sharded/run_cell.py OUT <cli args>``.

fit 2 steps -> checkpoint (sharded where the strategy shards) -> validate -> resume from the checkpoint for
one more step. Lightning relaunches this script once per extra rank, so every rank runs the same sequence
and the launch cost is paid once. Rank 0 writes ``OUT/result.json`` (steps, validation metrics) and
``OUT/logits.pt`` (the in-memory model's logits on a fixed input, to compare with the exported directory).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from lightning.pytorch import Callback

from metalight.cli import main

PROBE_IDS = torch.tensor([[1, 17, 305, 42, 9, 1000]])


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


def run(out: Path, args: list[str]) -> None:
    """fit, checkpoint, validate, resume (see module docstring)."""
    logger = ["--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", "cell"]
    probe = ["--trainer.callbacks+=run_cell.ProbeLogits", f"--trainer.callbacks.path={out / 'logits.pt'}"]
    cli = main(["fit", *args, *logger, *probe, "--trainer.logger.init_args.version", "fit",
                "--trainer.max_steps", "2"])
    trainer = cli.trainer
    checkpoint = out / "step2.ckpt"  # a file, or a directory of shards under FSDP (sharded) / DeepSpeed
    trainer.save_checkpoint(checkpoint)
    fit_steps = trainer.global_step
    # A fresh trainer, as `cli.py validate --ckpt_path` (reusing the fitted one under FSDP would see the
    # model without its root FSDP unit).
    validated = main(["validate", *args, *logger, "--trainer.logger.init_args.version", "validate",
                      "--ckpt_path", str(checkpoint)])
    metrics = validated.trainer.callback_metrics
    resumed = main(["fit", *args, *logger, "--trainer.logger.init_args.version", "resume", "--trainer.max_steps",
                    "3", "--trainer.max_epochs", "-1", "--ckpt_path", str(checkpoint)])
    if trainer.is_global_zero:
        result = {"fit_steps": fit_steps, "resumed_steps": resumed.trainer.global_step,
                  "world_size": trainer.world_size, "strategy": type(trainer.strategy).__name__,
                  "validate": {k: float(v) for k, v in metrics.items()}}
        (out / "result.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    run(Path(sys.argv[1]), sys.argv[2:])
