"""``--ckpt_path`` checked before Lightning touches it: found, undamaged, and made by the configured method.

* ``last`` is resolved across the experiment's runs: each run claims a new ``version_N``, so Lightning's own
  ``last`` (which looks only in the new, empty run) never finds anything. Here it is the newest ``last*.ckpt``
  under ``<save_dir>/<name>/version_*/checkpoints/`` (and any ModelCheckpoint ``dirpath`` in the config), or
  an error naming where it looked.
* A damaged file is refused by the zip archive's CRCs (:func:`metalight.models.checkpoints.verify_archive`).
* A checkpoint of another module class is refused naming both (Lightning would silently swap the configured
  method for the checkpoint's); a measurement-only config (``EvalModule``) measures any method's checkpoint.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from metalight.cli.run_dirs import logger_dirs
from metalight.errors import ConfigError
from metalight.models.checkpoints import checkpoint_header, verify_archive

CHECKPOINT_KEYWORDS = ("last", "best", "hpc", "registry")
# Configs naming this class measure a model; validating or testing another method's checkpoint with them is
# the point (the checkpoint's class is then used, as Lightning does).
MEASURE_ONLY = "metalight.methods.base.EvalModule"


def _get(node: Any, key: str, default: Any = None) -> Any:
    return node.get(key, default) if hasattr(node, "get") else default


def checkpoint_dirs(trainer: Any) -> list[Path]:
    """Directories whose ``last*.ckpt`` files ``--ckpt_path last`` considers: every run of the experiment
    (``<save_dir>/<name>/version_*/checkpoints``) and each ModelCheckpoint ``dirpath`` set in the config."""
    dirs = [run / "checkpoints" for base in logger_dirs(trainer) for run in sorted(base.glob("version_*"))]
    callbacks = _get(trainer, "callbacks") or []
    for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
        if str(_get(callback, "class_path", "")).endswith("ModelCheckpoint"):
            dirpath = _get(_get(callback, "init_args"), "dirpath")
            if dirpath:
                dirs.append(Path(dirpath))
    return dirs


def resolve_last(ckpt_path: str | None, trainer: Any) -> str | None:
    """``ckpt_path`` with ``last`` replaced by the newest ``last*.ckpt`` of the experiment's runs; anything
    else is returned unchanged. ``ConfigError`` naming where it looked when there is none."""
    if ckpt_path != "last":
        return ckpt_path
    found = [p for d in checkpoint_dirs(trainer) if d.is_dir() for p in d.glob("last*.ckpt") if p.is_file()]
    if not found:
        where = (
            ", ".join(str(base / "version_*" / "checkpoints") for base in logger_dirs(trainer))
            or "(no logger)"
        )
        raise ConfigError(
            f"--ckpt_path last: no last.ckpt in {where}; give the checkpoint's path, or train with "
            f"ModelCheckpoint(save_last: true) (a fit stopped by SIGTERM saves one too)"
        )
    return str(max(found, key=lambda p: p.stat().st_mtime))


def check_checkpoint(ckpt_path: str | None) -> None:
    """Refuse a ``ckpt_path`` that is missing, not a PyTorch checkpoint, or damaged (an archive CRC that does
    not match) before any work starts. Lightning's keywords (``best``, ...) and directories (sharded
    checkpoints) pass through."""
    if not ckpt_path or str(ckpt_path).split(":")[0] in CHECKPOINT_KEYWORDS:
        return
    path = Path(ckpt_path).expanduser()
    if path.is_dir():
        return
    if not path.is_file():
        raise ConfigError(
            f"checkpoint not found: {path}; check --ckpt_path (runs keep them under <run dir>/checkpoints/)"
        )
    verify_archive(path)


def check_checkpoint_class(ckpt_path: str | None, configured: str | None, subcommand: str) -> None:
    """Refuse a checkpoint whose module class (``_class_path`` in its hyperparameters) differs from the
    configured ``model.class_path``, naming both; a measure-only config under validate / test is exempt."""
    if not ckpt_path or not configured or not Path(ckpt_path).is_file():
        return
    saved = checkpoint_header(ckpt_path).get("class_path")
    if (
        not saved
        or _same_class(saved, configured)
        or (_same_class(configured, MEASURE_ONLY) and subcommand in ("validate", "test"))
    ):
        return
    raise ConfigError(
        f"checkpoint {ckpt_path} was made by {saved}, but the config runs {configured} "
        f"(model.class_path); give a checkpoint of {configured.rpartition('.')[2]}, or {subcommand} it "
        f"with the config it was trained with"
    )


def _same_class(a: str, b: str) -> bool:
    """Whether two class paths name one class (``pkg.Cls`` re-exported from ``pkg.module.Cls`` counts)."""
    if a == b:
        return True
    try:
        return _import(a) is _import(b)
    except (ImportError, AttributeError, ValueError):
        return False


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)
