"""Device and precision for the commands that load a model outside the Trainer (probe experiments, data
builders).

``--device auto`` is the first CUDA GPU when one is visible, else the CPU; ``--dtype auto`` is bfloat16 on a
GPU and float32 on the CPU (as the Trainer paths: ``bf16-mixed`` on GPUs, fp32 on CPU); ``--device-map auto``
spreads a model larger than one device over every visible GPU (and the CPU), through accelerate.
"""

from __future__ import annotations

import argparse

import torch

from metalight.errors import ConfigError
from metalight.models.loading import load_model

DTYPES = ("auto", "float32", "bfloat16", "float16")


def add_placement_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--device``, ``--dtype`` and ``--device-map`` to a command line."""
    parser.add_argument(
        "--device", default="auto", help="auto (cuda if visible, else cpu), cpu, cuda, cuda:1, ..."
    )
    parser.add_argument(
        "--dtype", default="auto", choices=DTYPES, help="auto: bfloat16 on GPU, float32 on CPU"
    )
    parser.add_argument(
        "--device-map",
        default=None,
        help="e.g. auto: split a model larger than one device over the visible GPUs (replaces --device)",
    )


def placement(device: str = "auto", dtype: str = "auto") -> tuple[str, str]:
    """The concrete ``(device, dtype)`` for the settings (see module docstring)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {device}: no CUDA device is visible on this machine; use --device cpu (or auto)"
        )
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype}: use one of {', '.join(DTYPES)}")
    return device, dtype


def load_placed(spec: str, device: str = "auto", dtype: str = "auto", device_map: str | None = None):
    """``load_model(spec)`` on the resolved device and dtype, or spread by ``device_map``."""
    if device_map is not None:
        _, dtype = placement("cuda" if torch.cuda.is_available() else "cpu", dtype)
        return load_model(spec, dtype, device_map=device_map)
    device, dtype = placement(device, dtype)
    return load_model(spec, dtype, device)
