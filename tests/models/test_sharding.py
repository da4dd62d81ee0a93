"""Generation under FSDP (torch FSDP on CPU with gloo; Lightning refuses FSDP on CPU, torch does not):
ranks with different prompt lengths finish without hanging and match the unsharded model."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metalight.models.generation import Decoding, Prompt, generate
from metalight.models.loading import load_model
from metalight.models.sharding import full_params_for_generation
from metalight.strategies import decoder_layer_classes

PROMPTS = [
    ["Question: who wrote Hamlet?\n"],
    ["Q: a much longer prompt with many more tokens in it than the other?\n"],
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, model_dir: str, out: dict):
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.distributed.fsdp.wrap import ModuleWrapPolicy

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model, tokenizer = load_model(model_dir)
        holder = torch.nn.ModuleDict({"model": model})  # stands in for the LightningModule that FSDP wraps
        root = FullyShardedDataParallel(
            holder,
            auto_wrap_policy=ModuleWrapPolicy(decoder_layer_classes(model)),
            device_id=torch.device("cpu"),
            use_orig_params=True,
        )
        # Rank 1's prompt is longer and its greedy continuation may stop at a different step.
        with full_params_for_generation(root):
            result = generate(
                model,
                tokenizer,
                [Prompt(t) for t in PROMPTS[rank]],
                Decoding(max_new_tokens=6),
                synced_gpus=True,
            )
        out[rank] = result.completion_ids
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(300)
def test_fsdp_generation_matches_unsharded_model(tiny_model_dir):
    model, tokenizer = load_model(str(tiny_model_dir))
    expected = {
        rank: generate(
            model, tokenizer, [Prompt(t) for t in prompts], Decoding(max_new_tokens=6)
        ).completion_ids
        for rank, prompts in enumerate(PROMPTS)
    }
    out = mp.Manager().dict()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_worker, args=(_free_port(), str(tiny_model_dir), out), nprocs=2, join=True)
    assert dict(out) == expected


def test_no_op_without_fsdp():
    with full_params_for_generation(torch.nn.Linear(2, 2)):
        pass
    with full_params_for_generation(None):
        pass
