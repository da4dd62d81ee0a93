"""Multi-node runs need one run directory that every node sees: checked at set-up, on every rank at once.

Global rank 0 claims the run directory and every rank is told its path (``trainer.log_dir``, a broadcast), so
checkpoint shards, exports and reports of all ranks meet there. That assumes the directory lies on a
filesystem every node mounts at the same path. Without one, ranks on other nodes would write into a directory
nobody reads (a sharded checkpoint missing their shards) or fail alone while the others wait for them; here
every rank looks for a token file rank 0 just wrote, the answers are gathered, and all ranks stop together
with one error naming the nodes that could not see it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path

import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer

from metalight.errors import ConfigError


class SharedRunDirCheck(Callback):
    """At set-up of a run with more than one process: every rank must see the file global rank 0 writes in the
    run directory, else every rank raises the same :class:`ConfigError` (no rank is left waiting)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.world_size < 2:
            return
        strategy = trainer.strategy
        run_dir = Path(
            trainer.log_dir or trainer.default_root_dir
        )  # broadcast from rank 0: every rank calls it
        token = run_dir / f".shared-fs-check-{strategy.broadcast(uuid.uuid4().hex)}"
        if trainer.is_global_zero:
            run_dir.mkdir(parents=True, exist_ok=True)
            token.touch()
        strategy.barrier("shared_run_dir_written")
        seen = _appears(token)
        views: list = [None] * trainer.world_size
        dist.all_gather_object(views, (trainer.global_rank, trainer.node_rank, socket.gethostname(), seen))
        strategy.barrier("shared_run_dir_checked")
        if trainer.is_global_zero:
            token.unlink(missing_ok=True)
        blind = [view for view in views if not view[3]]
        if blind:
            where = ", ".join(f"node {node} ({host}, rank {rank})" for rank, node, host, _ in blind)
            raise ConfigError(
                f"the run directory {run_dir} that global rank 0 created is not visible on {where}: a "
                f"multi-node run needs trainer.logger.init_args.save_dir (or trainer.default_root_dir) "
                f"on a filesystem every node mounts at the same path (docs/scaling.md, 'What a "
                f"multi-node run needs')"
            )


def _appears(path: Path, tries: int = 5, wait_s: float = 1.0) -> bool:
    """Whether ``path`` exists, looked up by listing its directory (which makes an NFS client ask the server
    rather than trust its cached entries), a few times ``wait_s`` apart before saying no."""
    for attempt in range(tries):
        try:
            if path.name in os.listdir(path.parent):
                return True
        except OSError:  # the directory itself is not there (yet)
            pass
        if attempt < tries - 1:
            time.sleep(wait_s)
    return False
