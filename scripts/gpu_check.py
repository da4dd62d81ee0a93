"""The strategy matrix on GPUs, bf16-mixed, with a Qwen2.5-0.5B-shaped random model; writes
docs/benchmarks/gpu.json.

Per method x strategy cell (the cells of tests/sharded, on the real fragments): wall time per training step
and peak GPU memory per device; the two-node cells (tests/sharded/test_two_nodes.py: Lightning's NODE_RANK,
torchrun, srun's environment), each node given half the GPUs, compared with the same cell in one launch; then
one ES iteration under DDP and the ES engine's GPU comparison (``scripts/bench_es_engine.py --device cuda
--quick``). About 15 minutes on one GPU; without CUDA it refuses. Run from the repository root (``-m``: the
cells live in the tests package):

    python -m scripts.gpu_check                 # every visible GPU
    python -m scripts.gpu_check --devices 1     # one GPU (cells run as one process; no two-node cells)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from tests.sharded.nodes import launch, launch_commands
from tests.sharded.strategy_cell import MATRIX, TWO_NODES, cell_command, cell_program

ROOT = Path(__file__).resolve().parents[1]
GPU = ("--trainer.accelerator", "gpu", "--trainer.precision", "bf16-mixed")

OUT = ROOT / "docs" / "benchmarks" / "gpu.json"


def qwen_shaped_model(path: Path) -> Path:
    """A Qwen2.5-0.5B-shaped model with random weights (and the embedded model's tokenizer) at ``path``."""
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from metalight.models.embedded import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir("smollm2-135m-instruct"))
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=896,
        intermediate_size=4864,
        num_hidden_layers=24,
        num_attention_heads=14,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
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
    out = work / name
    status, seconds, tail = run(
        cell_command(out, name, model, *GPU, "--trainer.devices", str(devices)), timeout=300
    )
    result = json.loads((out / "result.json").read_text()) if status == 0 else {"error": tail}
    return {"status": status, "wall_s": round(seconds, 1), **result}


def two_node_cell(name: str, model: Path, work: Path, devices: int, one_launch: dict) -> dict:
    """Cell ``name`` as two nodes of ``devices // 2`` GPUs each (``CUDA_VISIBLE_DEVICES`` split), launched as
    tests/sharded/test_two_nodes.py launches it; the largest differences from the one-launch run
    ``one_launch`` (its logits and validation metrics, when both ran on the same number of ranks)."""
    per_node = devices // 2
    if per_node < 1:
        return {"status": "skipped", "reason": "two nodes need at least 2 GPUs (one set per node)"}
    launcher, late = TWO_NODES[name]
    out = work / "two_nodes" / name

    def commands(port: int) -> list:
        nodes = launch_commands(launcher, port, 2, per_node, cell_program(out, name, model, *GPU))
        if launcher == "srun":  # the stand-in srun gives each node's tasks their GPUs, as srun binds them
            return [[({**env, "SLURM_GPUS_PER_NODE": str(per_node)}, argv) for env, argv in nodes[0]]]
        return [
            [
                (
                    {
                        **env,
                        "CUDA_VISIBLE_DEVICES": ",".join(str(node * per_node + i) for i in range(per_node)),
                    },
                    argv,
                )
                for env, argv in started
            ]
            for node, started in enumerate(nodes)
        ]

    start = time.perf_counter()
    processes = launch(commands, out / "logs", timeout=300, late=late)
    seconds = round(time.perf_counter() - start, 1)
    status = max((abs(p.returncode or 0) for p in processes), default=0)
    if status or not (out / "result.json").is_file():
        return {
            "status": status or 1,
            "wall_s": seconds,
            "launcher": launcher,
            "error": "\n".join(p.text()[-1000:] for p in processes) or "no result.json",
        }
    result = json.loads((out / "result.json").read_text())
    comparison = {}
    if one_launch.get("status") == 0 and one_launch.get("world_size") == result["world_size"]:
        reference = work / name
        comparison["logits_max_abs_diff"] = float(
            (torch.load(out / "logits.pt") - torch.load(reference / "logits.pt")).abs().max()
        )
        pairs = [(v, one_launch["validate"].get(k, math.nan)) for k, v in result["validate"].items()]
        comparison["validate_max_abs_diff"] = max(
            (abs(a - b) for a, b in pairs if not math.isnan(a - b)), default=0.0
        )
    return {
        "status": 0,
        "wall_s": seconds,
        "launcher": launcher,
        "nodes": 2,
        "devices_per_node": per_node,
        "late_node": late,
        **result,
        "versus_one_launch": comparison,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=0, help="GPUs per cell (default: every visible one)")
    parser.add_argument("--out", type=Path, default=OUT, help="where the JSON is written")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(
            "error: scripts/gpu_check.py needs a CUDA GPU and none is visible; "
            "the same matrix runs on CPU in "
            "`make test` (pytest -m sharded tests/sharded)",
            file=sys.stderr,
        )
        return 2
    devices = args.devices or torch.cuda.device_count()
    report = {
        "date": datetime.date.today().isoformat(),
        "device": torch.cuda.get_device_name(0),
        "devices": devices,
        "precision": "bf16-mixed",
        "model": "Qwen2.5-0.5B-shaped, random weights",
        "cells": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = qwen_shaped_model(work / "model")
        for name in MATRIX:
            report["cells"][name] = cell(name, model, work, devices)
            print(
                f"{name}: {report['cells'][name]['status']} in {report['cells'][name]['wall_s']} s",
                flush=True,
            )
        report["two_node_cells"] = {}
        for name in TWO_NODES:
            result = report["two_node_cells"][name] = two_node_cell(
                name, model, work, devices, report["cells"][name]
            )
            print(f"{name} on two nodes: {result['status']} {result.get('reason', '')}", flush=True)
        es = [
            "cli.py",
            "fit",
            "--config",
            "configs/esma/quickstart.yaml",
            "--config",
            "configs/strategy/ddp.yaml",
            "--model.init_args.model",
            str(model),
            "--trainer.max_steps",
            "1",
            "--trainer.accelerator",
            "gpu",
            "--trainer.devices",
            str(devices),
            "--trainer.logger.init_args.save_dir",
            str(work / "es"),
        ]
        status, seconds, tail = run([sys.executable, *es], timeout=300)
        report["esma_ddp_one_iteration"] = {"status": status, "wall_s": round(seconds, 1), "tail": tail}
        status, seconds, tail = run(
            [sys.executable, "scripts/bench_es_engine.py", "--device", "cuda", "--quick"], timeout=300
        )
        report["bench_es_engine_cuda"] = {"status": status, "wall_s": round(seconds, 1), "output": tail}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")
    cells = [*report["cells"].values(), *report["two_node_cells"].values()]
    return 0 if all(c["status"] in (0, "skipped") for c in cells) else 1


if __name__ == "__main__":
    raise SystemExit(main())
