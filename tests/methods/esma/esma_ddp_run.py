"""Train the test ESMA module for 3 steps on 1 or 2 CPU processes (DDP, gloo) and save the weights and the
last step's ``train/`` values.

    python -m tests.methods.esma.esma_ddp_run MODEL_DIR QUESTIONS RUN_DIR DEVICES OUT [key=value ...]

``engine.<field>=value`` sets a field of the population engine.

Lightning's DDP launcher starts the second process by re-running this script; rank 0 saves the weights.
"""

import sys
from pathlib import Path

import torch

from metalight.methods.esma.engine import PopulationEngine
from tests.methods.esma.esma_helpers import fit, module, weights

torch.set_num_threads(1)


def parse(value: str):
    return int(value) if value.isdigit() else value


def main() -> None:
    model_dir, questions, run_dir, devices, out, *pairs = sys.argv[1:]
    overrides = {k: parse(v) for k, v in (p.split("=", 1) for p in pairs)}
    engine = {k.removeprefix("engine."): overrides.pop(k) for k in list(overrides) if k.startswith("engine.")}
    overrides["engine"] = PopulationEngine(**engine)
    devices = int(devices)
    strategy = "ddp" if devices > 1 else "auto"
    esma = fit(
        module(model_dir, **overrides), Path(questions), 3, Path(run_dir), devices=devices, strategy=strategy
    )
    if esma.global_rank == 0:
        metrics = {k: float(v) for k, v in esma.trainer.callback_metrics.items() if k.startswith("train/")}
        torch.save({"weights": weights(esma), "metrics": metrics}, out)


if __name__ == "__main__":
    main()
