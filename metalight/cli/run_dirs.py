"""Run directories claimed atomically: ``<save_dir>/<name>/version_N`` made with ``os.mkdir`` before the run
starts.

Lightning picks ``version_N`` by listing the directory, so runs started together could pick the same one and
overwrite each other's reports. Here each run creates its directory itself (``mkdir`` fails if another run got
there first, and the next number is tried) and the logger is pinned to it. A run that fails before writing
anything but its config and event files removes its directory again (:func:`release_empty_claims`). A version
given explicitly must not hold an earlier run (:func:`check_explicit_version`).
"""

from __future__ import annotations

import os
import shutil
import sys
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
        raise ConfigError(
            f"cannot create the run directory {root} ({err.strerror}); set "
            f"trainer.logger.init_args.save_dir (or trainer.default_root_dir) to a writable "
            f"directory"
        ) from None
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
            raise ConfigError(
                f"cannot create the run directory {path} ({err.strerror}); set "
                f"trainer.logger.init_args.save_dir (or trainer.default_root_dir) to a writable "
                f"directory"
            ) from None
        _claimed.append(path)
        return path, version
    raise ConfigError(f"no free version_N under {root} after {max_tries} tries; clean up old runs")


def _get(node: Any, key: str, default: Any = None) -> Any:
    return node.get(key, default) if hasattr(node, "get") else default


def _versioned_loggers(trainer: Any) -> list[tuple[Any, str, Path]]:
    """``(init_args, save_dir, <save_dir>/<name>)`` of every TensorBoard / CSV logger in the trainer config,
    with ``trainer.default_root_dir`` in place of the default ``save_dir`` (``runs``) as the CLI applies it (a
    ``name`` may hold slashes: ``sweep/entry``)."""
    loggers = _get(trainer, "logger")
    if not isinstance(loggers, list):
        loggers = [loggers]
    root_dir = _get(trainer, "default_root_dir")
    out = []
    for logger in loggers:
        class_path = _get(logger, "class_path")
        init_args = _get(logger, "init_args")
        if (
            not isinstance(class_path, str)
            or init_args is None
            or class_path.rpartition(".")[2] not in VERSIONED_LOGGERS
        ):
            continue
        save_dir = _get(init_args, "save_dir") or "runs"
        if root_dir and save_dir == "runs":
            save_dir = str(root_dir)
        out.append((init_args, save_dir, Path(save_dir) / (_get(init_args, "name") or "default")))
    return out


def logger_dirs(trainer: Any) -> list[Path]:
    """``<save_dir>/<name>`` of every versioned logger in the trainer config (where its ``version_N`` go)."""
    return [base for _, _, base in _versioned_loggers(trainer)]


def pin_logger_versions(trainer: Any, overwrite: bool = False, ckpt_path: str | None = None) -> list[Path]:
    """Claim a run directory for every versioned logger in the trainer config whose ``version`` is unset,
    and write the claimed number into the config. ``trainer.default_root_dir``, when set, replaces the
    default ``save_dir`` (``runs``). A ``version`` given explicitly must name an empty (or new) directory,
    unless ``overwrite`` (its contents are removed first) or ``ckpt_path`` lies inside it (the run continues
    in place). Only the process that becomes global rank 0 claims, on any node (the others are given its
    directory through ``trainer.log_dir``, a broadcast). Returns the claimed directories."""
    if not launch_is_global_zero():  # every rank runs the command: rank 0's directory is broadcast to all
        return []
    claimed = []
    for init_args, save_dir, base in _versioned_loggers(trainer):
        init_args["save_dir"] = save_dir
        version = _get(init_args, "version")
        if version is not None:
            check_explicit_version(base, version, overwrite, ckpt_path)
            continue
        path, number = claim_version(base)
        init_args["version"] = number
        claimed.append(path)
    return claimed


def check_explicit_version(base: Path, version: Any, overwrite: bool, ckpt_path: str | None) -> None:
    """Refuse an explicit ``version`` whose directory holds an earlier run (its report, samples and events
    would be overwritten or mixed), unless ``overwrite`` (the directory is emptied first) or ``ckpt_path``
    lies in it."""
    name = version if isinstance(version, str) else f"version_{version}"
    path = base / name
    if not path.is_dir() or not any(path.iterdir()):
        return
    if ckpt_path and Path(ckpt_path).resolve().is_relative_to(path.resolve()):
        return  # resuming a run in its own directory
    if not overwrite:
        raise ConfigError(
            f"the run directory {path} (trainer.logger.init_args.version: {version}) already holds a "
            f"run; its report, samples and events would be overwritten or mixed: choose another "
            f"version, leave version unset for the next free one, or add --overwrite_version true to "
            f"replace it"
        )
    for item in path.iterdir():
        shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()


def forget_claims() -> None:
    """Keep the directories claimed so far (the run finished); later failures in this process leave them."""
    _claimed.clear()


# What a run writes before it has produced anything worth keeping: its config, hyperparameters and event
# files.
THROWAWAY = ("config.yaml", "hparams.yaml")


def _throwaway(item: Path) -> bool:
    if item.is_dir():
        return not any(item.iterdir())
    return item.name in THROWAWAY or item.name.startswith("events.out.tfevents.")


def release_empty_claims(say_what_is_kept: bool = True) -> None:
    """After a failed run: remove the directories this process claimed that hold nothing but a config, its
    hyperparameters and TensorBoard event files (or empty folders); for any other, say on stderr what it
    keeps."""
    while _claimed:
        path = _claimed.pop()
        try:
            items = list(path.iterdir())
        except OSError:  # already gone
            continue
        if all(_throwaway(item) for item in items):
            shutil.rmtree(path, ignore_errors=True)
            continue
        kept = sorted(item.name + ("/" if item.is_dir() else "") for item in items if not _throwaway(item))
        if say_what_is_kept:
            print(
                f"note: the failed run's directory {path} is kept; it holds {', '.join(kept)}",
                file=sys.stderr,
            )
