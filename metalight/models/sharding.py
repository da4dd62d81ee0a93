"""Generation under parameter sharding.

Under FSDP the decoder layers gather their own parameters when they run, but the parameters owned by the
root unit (embeddings, final norm, LM head) are only gathered by the root's ``forward`` — which
``model.generate`` never calls. :func:`full_params_for_generation` gathers exactly those (``recurse=False``)
for the duration of generation (unless called inside the root's forward, as Lightning's steps are, where
they are gathered already). Ranks must also step in lock-step (``synced_gpus=True``), or a rank that
finishes early leaves the others waiting in a collective forever.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from torch import nn


def fsdp_root(module: nn.Module | None) -> nn.Module | None:
    """``module`` if it is an FSDP (v1) wrapper, else ``None``."""
    if module is None:
        return None
    from torch.distributed.fsdp import FullyShardedDataParallel

    return module if isinstance(module, FullyShardedDataParallel) else None


def _in_forward(root: nn.Module) -> bool:
    # Lightning runs training / validation steps inside the root unit's forward: its parameters are gathered
    # already, and FSDP refuses to gather them again ("cannot manually unshard during forward").
    from torch.distributed.fsdp._common_utils import TrainingState

    return getattr(root, "training_state", TrainingState.IDLE) != TrainingState.IDLE


@contextmanager
def full_params_for_generation(root: nn.Module | None):
    """Gather the FSDP root unit's own parameters (not the layers') while generating; no-op otherwise."""
    root = fsdp_root(root)
    if root is None or _in_forward(root):
        with nullcontext():
            yield
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(root, recurse=False, writeback=False):
        yield


def gathered_state_dict(wrapped: nn.Module | None, module: nn.Module) -> dict[str, torch.Tensor]:
    """The full, unsharded state dict of ``module`` (CPU tensors; keys as ``module.state_dict()``).

    ``wrapped`` is what the strategy wraps ``module`` in (FSDP unit, DeepSpeed engine, DDP, or ``None``).
    Under FSDP and ZeRO-3 this is a collective: every rank must call it. Under FSDP on GPUs only rank 0
    receives the tensors (the other ranks get ``{}``); elsewhere every rank does.
    """
    root = fsdp_root(wrapped)
    if root is not None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        # Offloading copies GPU shards to CPU on rank 0 only; with CPU shards it frees memory that the
        # gathered tensors still point to (a segfault on torch 2.13), so there every rank keeps its copy.
        on_gpu = any(p.device.type != "cpu" for p in root.parameters())
        options = StateDictOptions(full_state_dict=True, cpu_offload=on_gpu)
        return {k: v.cpu() for k, v in get_model_state_dict(root, options=options).items()}
    partitioned = [p for p in module.parameters() if hasattr(p, "ds_id")]  # DeepSpeed ZeRO-3
    if partitioned:
        import deepspeed

        with deepspeed.zero.GatheredParameters(partitioned, modifier_rank=None):
            return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
