"""Train the test ESMA module for 3 steps on 1 or 2 CPU processes (DDP, gloo) and save the weights.

    python -m tests.methods.esma.esma_ddp_run MODEL_DIR QUESTIONS RUN_DIR DEVICES OUT [key=value ...]

Lightning's DDP launcher starts the second process by re-running this script; rank 0 saves the weights.
"""

import sys
from pathlib import Path

import torch

from tests.methods.esma.esma_helpers import fit, module, weights

torch.set_num_threads(1)


def parse(value: str):
    return int(value) if value.isdigit() else value


def main() -> None:
    model_dir, questions, run_dir, devices, out, *pairs = sys.argv[1:]
    overrides = {k: parse(v) for k, v in (p.split("=", 1) for p in pairs)}
    devices = int(devices)
    strategy = "ddp" if devices > 1 else "auto"
    esma = fit(module(model_dir, **overrides), Path(questions), 3, Path(run_dir), devices=devices,
               strategy=strategy)
    if esma.global_rank == 0:
        torch.save(weights(esma), out)


if __name__ == "__main__":
    main()
