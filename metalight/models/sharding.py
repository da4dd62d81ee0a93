"""Generation under parameter sharding.

Under FSDP the decoder layers gather their own parameters when they run, but the parameters owned by the
root unit (embeddings, final norm, LM head) are only gathered by the root's ``forward`` — which
``model.generate`` never calls. :func:`full_params_for_generation` gathers exactly those (``recurse=False``)
for the duration of generation. Ranks must also step in lock-step (``synced_gpus=True``), or a rank that
finishes early leaves the others waiting in a collective forever.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

from torch import nn


def fsdp_root(module: nn.Module | None) -> nn.Module | None:
    """``module`` if it is an FSDP (v1) wrapper, else ``None``."""
    if module is None:
        return None
    from torch.distributed.fsdp import FullyShardedDataParallel

    return module if isinstance(module, FullyShardedDataParallel) else None


@contextmanager
def full_params_for_generation(root: nn.Module | None):
    """Gather the FSDP root unit's own parameters (not the layers') while generating; no-op otherwise."""
    root = fsdp_root(root)
    if root is None:
        with nullcontext():
            yield
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(root, recurse=False, writeback=False):
        yield
