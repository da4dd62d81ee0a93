"""Run directories claimed atomically: ``<save_dir>/<name>/version_N`` made with ``os.mkdir`` before the run starts.

Lightning picks ``version_N`` by listing the directory, so runs started together could pick the same one and
overwrite each other's reports. Here each run creates its directory itself (``mkdir`` fails if another run got
there first, and the next number is tried) and the logger is pinned to it. A run that fails before writing
anything removes its empty directory again (:func:`release_empty_claims`).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from metalight.errors import ConfigError
from metalight.strategies import launch_is_global_zero

# Loggers whose init_args are (save_dir, name, version) and whose directory is save_dir/name/version_N.
VERSIONED_LOGGERS = ("TensorBoardLogger", "CSVLogger")

_claimed: list[Path] = []


def claim_version(root: str | Path, max_tries: int = 10_000) -> tuple[Path, int]:
    """Create the first free ``root/version_N`` (atomically: ``os.mkdir``) and return it and ``N``."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the run directory {root} ({err.strerror}); set "
                          f"trainer.logger.init_args.save_dir (or trainer.default_root_dir) to a writable "
                          f"directory") from None
    taken = [int(p.name[8:]) for p in root.glob("version_*") if p.name[8:].isdigit()]
    version = max(taken, default=-1) + 1
    for _ in range(max_tries):
        path = root / f"version_{version}"
        try:
            os.mkdir(path)
        except FileExistsError:
            version += 1
            continue
        except OSError as err:
            raise ConfigError(f"cannot create the run directory {path} ({err.strerror}); set "
                              f"trainer.logger.init_args.save_dir (or trainer.default_root_dir) to a writable "
                              f"directory") from None
        _claimed.append(path)
        return path, version
    raise ConfigError(f"no free version_N under {root} after {max_tries} tries; clean up old runs")


CHECKPOINT_KEYWORDS = ("last", "best", "hpc", "registry")


def check_checkpoint(ckpt_path: str | None) -> None:
    """Refuse a ``ckpt_path`` that is missing or not a readable PyTorch checkpoint before any work starts
    (``torch.save`` writes a zip archive; a truncated or overwritten file is not one). Lightning's keywords
    (``last``, ``best``, ...) and directories (sharded checkpoints) pass through."""
    if not ckpt_path or str(ckpt_path).split(":")[0] in CHECKPOINT_KEYWORDS:
        return
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        return
    if not path.is_file():
        raise ConfigError(f"checkpoint not found: {path}; check --ckpt_path (runs keep them under "
                          f"<run dir>/checkpoints/)")
    if not zipfile.is_zipfile(path):
        raise ConfigError(f"checkpoint {path} is not a readable PyTorch checkpoint (corrupt or truncated); resume "
                          f"from another one, e.g. an earlier file in {path.parent}")


def _get(node: Any, key: str, default: Any = None) -> Any:
    return node.get(key, default) if hasattr(node, "get") else default


def pin_logger_versions(trainer: Any) -> list[Path]:
    """Claim a run directory for every versioned logger in the trainer config whose ``version`` is unset,
    and write the claimed number into the config. ``trainer.default_root_dir``, when set, replaces the
    default ``save_dir`` (``runs``). Only the process that becomes global rank 0 claims, on any node (the
    others are given its directory through ``trainer.log_dir``, a broadcast). Returns the claimed directories."""
    if not launch_is_global_zero():  # every rank runs the command: rank 0's directory is broadcast to all
        return []
    loggers = _get(trainer, "logger")
    if not isinstance(loggers, list):
        loggers = [loggers]
    root_dir = _get(trainer, "default_root_dir")
    claimed = []
    for logger in loggers:
        class_path = _get(logger, "class_path")
        init_args = _get(logger, "init_args")
        if not isinstance(class_path, str) or init_args is None \
                or class_path.rpartition(".")[2] not in VERSIONED_LOGGERS or _get(init_args, "version") is not None:
            continue
        save_dir = _get(init_args, "save_dir") or "runs"
        if root_dir and save_dir == "runs":
            save_dir = str(root_dir)
            init_args["save_dir"] = save_dir
        path, version = claim_version(Path(save_dir) / (_get(init_args, "name") or "default"))
        init_args["version"] = version
        claimed.append(path)
    return claimed


def forget_claims() -> None:
    """Keep the directories claimed so far (the run finished); later failures in this process leave them."""
    _claimed.clear()


def release_empty_claims() -> None:
    """Remove the directories this process claimed that are still empty (a run that failed early)."""
    while _claimed:
        path = _claimed.pop()
        try:
            path.rmdir()
        except OSError:  # not empty (or already gone): keep it
            pass
