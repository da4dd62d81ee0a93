"""File writes that never leave a half-written file: a temporary file in the same directory, then a rename.

A write that fails (a full disk, a directory made read-only) removes its temporary file and raises the
``OSError``; the file it was replacing is untouched. Appends (caches, answers streamed as they complete) write
whole lines and sync them. Every write opens its file through :func:`_open_temp` / :func:`_open_append`, the
one place a test stands in a full disk.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO


def _open_temp(path: Path) -> tuple[BinaryIO, Path]:
    """A new temporary file beside ``path`` (same directory, so the rename is atomic), open for writing."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    return os.fdopen(fd, "wb"), Path(tmp)


def _open_append(path: Path) -> BinaryIO:
    """``path`` open for appending bytes."""
    return path.open("ab")


def atomic_write(path: str | Path, write: Callable[[BinaryIO], Any]) -> Path:
    """Create ``path`` atomically (and its parent directories) from what ``write(handle)`` writes; on any
    failure the temporary file is removed and the error raised."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = _open_temp(path)
    try:
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (creating parent directories)."""
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (creating parent directories)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def append_line(path: str | Path, line: str) -> None:
    """Append ``line`` and a newline to ``path`` (creating it and its parents) and sync it to disk."""
    append_lines(path, [line])


def append_lines(path: str | Path, lines: Iterable[str]) -> None:
    """Append whole lines to ``path`` in one write (creating it and its parents) and sync them to disk."""
    path = Path(path)
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _open_append(path) as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def read_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """``(line number, raw bytes)`` of the non-blank lines of ``path`` (nothing when it does not exist); the
    caller decodes, so one bad byte costs one line, not the file."""
    path = Path(path)
    if not path.is_file():
        return
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if raw.strip():
                yield line_no, raw


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


def json_line(row: dict[str, Any]) -> str:
    """One strict-JSON line (NaN and ±inf become ``null``; non-ASCII text kept as is)."""
    return json.dumps(strict_json(row), default=_default, ensure_ascii=False, allow_nan=False)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented strict JSON, atomically; undefined values (NaN, ±inf) become ``null``."""
    return atomic_write_text(
        path, json.dumps(strict_json(data), indent=2, default=_default, allow_nan=False) + "\n"
    )


def atomic_write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write one strict-JSON object per line, atomically (NaN and ±inf become ``null``)."""
    return atomic_write_text(path, "".join(json_line(r) + "\n" for r in rows))


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Read a JSONL file written by :func:`atomic_write_jsonl`."""
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
