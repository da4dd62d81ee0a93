"""The strategy matrix on GPUs, bf16-mixed, with a Qwen2.5-0.5B-shaped random model; writes docs/benchmarks/gpu.json.

Per method x strategy cell (the cells of tests/sharded, on the real fragments): wall time per training step
and peak GPU memory per device; then one ES iteration under DDP and the ES engine's GPU comparison
(``scripts/bench_es_engine.py --device cuda --quick``). About 10 minutes on one GPU; without CUDA it refuses.

    python scripts/gpu_check.py                 # every visible GPU
    python scripts/gpu_check.py --devices 1     # one GPU (cells run as one process)
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from strategy_cell import MATRIX, model_args  # scripts/ is on sys.path when this file runs

ROOT = Path(__file__).resolve().parents[1]

OUT = ROOT / "docs" / "benchmarks" / "gpu.json"


def qwen_shaped_model(path: Path) -> Path:
    """A Qwen2.5-0.5B-shaped model with random weights (and the embedded model's tokenizer) at ``path``."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from metalight.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir("smollm2-135m-instruct"))
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    Qwen2ForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def run(command: list[str], timeout: int) -> tuple[int, float, str]:
    """Run ``command`` from the repository root; returns (exit status, wall seconds, output tail)."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        status, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        status, output = 124, f"timed out after {timeout} s: {err.output or ''}"
    return status, time.perf_counter() - start, output[-2000:]


def cell(name: str, model: Path, work: Path, devices: int) -> dict:
    """One matrix cell in bf16-mixed on ``devices`` GPUs: timings and peak memory from its result.json."""
    args, fragment = MATRIX[name]
    out = work / name
    gpu = ("--trainer.accelerator", "gpu", "--trainer.precision", "bf16-mixed", "--trainer.devices", str(devices))
    command = [sys.executable, "scripts/strategy_cell.py", str(out), *args, *model_args(args, model),
               "--config", f"configs/strategy/{fragment}.yaml", *gpu]
    status, seconds, tail = run(command, timeout=300)
    result = json.loads((out / "result.json").read_text()) if status == 0 else {"error": tail}
    return {"status": status, "wall_s": round(seconds, 1), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=0, help="GPUs per cell (default: every visible one)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON is written")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("error: scripts/gpu_check.py needs a CUDA GPU and none is visible; the same matrix runs on CPU in "
              "`make test` (pytest -m sharded tests/sharded)", file=sys.stderr)
        return 2
    devices = args.devices or torch.cuda.device_count()
    report = {"date": datetime.date.today().isoformat(), "device": torch.cuda.get_device_name(0),
              "devices": devices, "precision": "bf16-mixed", "model": "Qwen2.5-0.5B-shaped, random weights",
              "cells": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = qwen_shaped_model(work / "model")
        for name in MATRIX:
            report["cells"][name] = cell(name, model, work, devices)
            print(f"{name}: {report['cells'][name]['status']} in {report['cells'][name]['wall_s']} s", flush=True)
        es = ["cli.py", "fit", "--config", "configs/esma/quickstart.yaml", "--config", "configs/strategy/ddp.yaml",
              "--model.init_args.model", str(model), "--trainer.max_steps", "1", "--trainer.accelerator", "gpu",
              "--trainer.devices", str(devices), "--trainer.logger.init_args.save_dir", str(work / "es")]
        status, seconds, tail = run([sys.executable, *es], timeout=300)
        report["esma_ddp_one_iteration"] = {"status": status, "wall_s": round(seconds, 1), "tail": tail}
        status, seconds, tail = run([sys.executable, "scripts/bench_es_engine.py", "--device", "cuda", "--quick"],
                                    timeout=300)
        report["bench_es_engine_cuda"] = {"status": status, "wall_s": round(seconds, 1), "output": tail}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(c["status"] == 0 for c in report["cells"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
