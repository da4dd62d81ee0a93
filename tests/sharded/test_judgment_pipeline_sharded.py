"""Know-thyself's three-phase pipeline under FSDP on 2 CPU processes: each phase is a sharded fit, phase 2
trains on phase 1's labels, phase 3 starts from phase 2's export gathered from the shards."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.sharded

ROOT = Path(__file__).resolve().parents[2]
FSDP_CPU2 = (
    "--config configs/strategy/fsdp.yaml --trainer.accelerator cpu --trainer.precision 32-true "
    "--trainer.devices 2"
)
# 4 questions (2 per rank, 1 step per epoch), 1 epoch per phase, answers and judgments of 4 tokens; no
# warm-up in phase 2, whose one step would otherwise have lr 0.
JUDGMENT = (
    "--data.init_args.source.init_args.max_samples "
    + shlex.quote('{"train": 4, "val": 2}')
    + " --data.init_args.batch_size 2 --trainer.callbacks.init_args.answers.max_new_tokens 4"
    " --trainer.callbacks.init_args.judgment.max_new_tokens 4"
)
KNOWLEDGE = (
    "--trainer.max_epochs 1 --data.init_args.batch_size 2 --model.init_args.lr_scheduler.warmup_ratio 0.0"
)


def load(path: Path, base: str | Path | None = None):
    """A ``save_pretrained`` directory loaded as a causal LM (an adapter on top of ``base``)."""
    from transformers import AutoModelForCausalLM

    if base is None:
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    from peft import PeftModel

    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), path)


def test_pipeline_phases_chain_through_exports_gathered_from_fsdp_shards(tmp_path, varied_model_dir):
    out = tmp_path / "exp"
    command = [
        sys.executable,
        "scripts/know_thyself_pipeline.py",
        "--quick",
        "--out",
        str(out),
        "--model",
        str(varied_model_dir),
        "--judgment-args",
        f"{JUDGMENT} {FSDP_CPU2}",
        "--knowledge-args",
        f"{KNOWLEDGE} {FSDP_CPU2}",
    ]
    proc = subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    phases = json.loads((out / "pipeline_state.json").read_text())["phases"]
    assert all(p["status"] == "done" and p["epoch"] == 1 for p in phases.values()), phases
    judgment1, knowledge, judgment3 = (out / name / "run" / "hf" for name in phases)
    assert phases["phase3_judgment"]["model_in"] == str(knowledge)
    # both ranks took part: the rounds gathered every question from the two halves
    rows = [
        json.loads(line)
        for line in (out / "phase1_judgment" / "run" / "judgment" / "train_epoch1.jsonl")
        .read_text()
        .splitlines()
    ]
    assert len({r["id"] for r in rows}) == 4
    assert (out / "phase1_judgment" / "run" / "checkpoints" / "epoch=0-step=1.ckpt").is_dir()  # sharded
    ids = torch.tensor([[1, 17, 305, 42]])
    with torch.no_grad():
        base_logits = load(varied_model_dir)(input_ids=ids).logits
        knowledge_logits = load(knowledge)(input_ids=ids).logits
        for adapter, base in ((judgment1, varied_model_dir), (judgment3, knowledge)):
            assert load(adapter, base)(input_ids=ids).logits.isfinite().all()
    assert not torch.allclose(knowledge_logits, base_logits)  # phase 2 merged a trained adapter
