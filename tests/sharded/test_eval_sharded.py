"""Evaluation (``EvalModule``, ``cli.py validate``) under FSDP on 2 CPU processes equals one process: the
reason to shard an evaluation is a model too big for one device. (DDP: tests/methods/test_eval_ddp.py.)"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.methods.test_eval_ddp import write_questions

pytestmark = pytest.mark.sharded

ROOT = Path(__file__).resolve().parents[2]
FSDP_CPU2 = (
    "--config",
    "configs/strategy/fsdp.yaml",
    "--trainer.accelerator",
    "cpu",
    "--trainer.precision",
    "32-true",
    "--trainer.devices",
    "2",
)


def validate(save_dir: Path, model_dir: Path, data: Path, *strategy: str) -> dict:
    """``cli.py validate`` of the TriviaQA evaluation config on ``data``; returns its report."""
    command = [
        sys.executable,
        "cli.py",
        "validate",
        "--config",
        "configs/eval/triviaqa.yaml",
        "--model.init_args.model",
        str(model_dir),
        "--data.init_args.path",
        json.dumps({"val": str(data)}),
        "--data.init_args.eval_batch_size",
        "2",
        "--model.init_args.evaluation.max_new_tokens",
        "4",
        "--trainer.logger.init_args.save_dir",
        str(save_dir),
        *strategy,
    ]
    proc = subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    (run,) = (save_dir / "eval-triviaqa").iterdir()
    return json.loads((run / "report.json").read_text())


def test_fsdp_evaluation_report_equals_single_process(tmp_path, varied_model_dir):
    data = write_questions(tmp_path / "questions.jsonl")
    single = validate(tmp_path / "single", varied_model_dir, data, "--trainer.accelerator", "cpu")
    sharded = validate(tmp_path / "fsdp", varied_model_dir, data, *FSDP_CPU2)
    assert single["n"] == sharded["n"] == 7  # the row the sampler repeats for rank 1 is masked out
    assert 0 < single["accuracy"] < 1
    # The same greedy answers (count metrics equal exactly); sums of confidences are reduced across ranks in
    # another order and the sharded forward sums in another order, so they agree to fp32 rounding.
    for key, value in single.items():
        if isinstance(value, float):
            other = sharded[key]
            assert (math.isnan(value) and math.isnan(other)) or abs(value - other) < 1e-6, key
        else:
            assert value == sharded[key], key
