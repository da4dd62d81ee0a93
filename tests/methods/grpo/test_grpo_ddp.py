"""GRPO under two-process DDP (gloo, CPU): batch-scaled advantages gather rewards across ranks, steps run."""

import json
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[3]


def test_grpo_fits_under_ddp_with_batch_scaled_rewards(tmp_path, tiny_model_dir):
    subprocess.run(
        [
            sys.executable,
            "cli.py",
            "fit",
            "--config",
            "configs/grpo/fanoutqa_accuracy.yaml",
            "--config",
            "configs/strategy/ddp.yaml",
            "--trainer.devices",
            "2",
            "--trainer.accelerator",
            "cpu",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--model.init_args.num_generations",
            "2",
            "--model.init_args.max_completion_length",
            "3",
            "--model.init_args.scale_rewards",
            "batch",
            "--model.init_args.beta",
            "0.1",
            "--model.init_args.optimizer.lr",
            "0.01",
            "--model.init_args.evaluation.max_new_tokens",
            "2",
            "--data.init_args.batch_size",
            "2",
            "--data.init_args.max_samples",
            json.dumps({"train": 8, "val": 3}),
            "--trainer.max_steps",
            "2",
            "--trainer.val_check_interval",
            "2",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (run,) = (tmp_path / "grpo-fanoutqa-accuracy").iterdir()
    report = json.loads((run / "report.json").read_text())
    assert report["n"] == 3 and report["method"] == "GRPOModule"
    events = EventAccumulator(str(run))
    events.Reload()
    tokens = [e.value for e in events.Scalars("train/num_tokens")]
    lengths = [e.value for e in events.Scalars("train/completions/mean_length")]
    assert len(tokens) == 2 and lengths == [3.0, 3.0]
    # both ranks' rows are counted: 2 ranks x 2 questions x 2 completions x 3 tokens, plus the prompts
    assert tokens[1] - tokens[0] > 2 * 2 * 2 * 3
