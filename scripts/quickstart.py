"""The README's main job on a fresh machine: measure the embedded SmolLM2-135M-Instruct on held-out real
questions (FanOutQA single-hop, read from the installed package), write report.json, samples and
TensorBoard logs under runs/, and print the numbers.

    python scripts/quickstart.py            # = python cli.py validate --config configs/quickstart.yaml
"""

from __future__ import annotations

import time

from metalight.cli import main as cli


def main() -> None:
    start = time.perf_counter()
    cli(["validate", "--config", "configs/quickstart.yaml"])
    print(f"\nquickstart finished in {time.perf_counter() - start:.0f} s; "
          f"browse the logs with: tensorboard --logdir runs")


if __name__ == "__main__":
    main()
