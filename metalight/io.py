"""Atomic file writes: a temporary file in the same directory, then a rename (never a half-written file)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (creating parent directories)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating parent directories)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _default(value: Any) -> Any:
    if hasattr(value, "item"):  # tensors / numpy scalars
        return value.item()
    return str(value)


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, ±inf: an undefined metric) replaced by ``None``, so it
    serialises as strict JSON (``null``) that any parser reads."""
    if isinstance(value, float) or (hasattr(value, "item") and getattr(value, "ndim", 0) == 0):
        value = value.item() if hasattr(value, "item") else value
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented strict JSON, atomically; undefined values (NaN, ±inf) become ``null``."""
    return atomic_write_text(path, json.dumps(strict_json(data), indent=2, default=_default, allow_nan=False)
                             + "\n")


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write one strict-JSON object per line, atomically (NaN and ±inf become ``null``)."""
    return atomic_write_text(path, "".join(json.dumps(strict_json(r), default=_default, ensure_ascii=False,
                                                      allow_nan=False) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file written by :func:`atomic_write_jsonl`."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
