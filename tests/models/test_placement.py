"""Device and dtype settings of the commands outside the Trainer (probe experiments, data builders)."""

import argparse

import pytest
import torch

from metalight.errors import ConfigError
from metalight.models.placement import add_placement_arguments, load_placed, placement


def test_auto_is_cpu_float32_without_a_gpu_and_cuda_bfloat16_with_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert placement() == ("cpu", "float32")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert placement() == ("cuda", "bfloat16")
    assert placement("cuda:1", "float32") == ("cuda:1", "float32")


def test_cuda_without_a_gpu_names_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="--device cuda: no CUDA device.*use --device cpu"):
        placement("cuda")


def test_loads_in_the_requested_dtype_and_by_device_map(tiny_model_dir):
    model, _ = load_placed(str(tiny_model_dir), "cpu", "bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    mapped, _ = load_placed(str(tiny_model_dir), dtype="float32", device_map="cpu")
    assert {p.device.type for p in mapped.parameters()} == {"cpu"}
    assert {p.dtype for p in mapped.parameters()} == {torch.float32}


@pytest.mark.parametrize("command", [["report", "--run", "r"], ["steer", "--run", "r"]])
def test_probe_experiments_take_placement_arguments(command):
    from metalight.methods.probes.__main__ import build_parser

    args = build_parser().parse_args(
        [*command, "--device", "cuda", "--dtype", "bfloat16", "--device-map", "auto"]
    )
    assert (args.device, args.dtype, args.device_map) == ("cuda", "bfloat16", "auto")


def test_placement_arguments_default_to_auto():
    parser = argparse.ArgumentParser()
    add_placement_arguments(parser)
    args = parser.parse_args([])
    assert (args.device, args.dtype, args.device_map) == ("auto", "auto", None)
