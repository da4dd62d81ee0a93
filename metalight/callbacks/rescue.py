"""Answers that cannot be written where they belong (a full disk, a run directory made read-only) are written
to a rescue directory instead, so a failed write never loses what a run generated.

The rescue directory is the first writable of ``$METALIGHT_RESCUE_DIR``,
``<system temp dir>/metalight-rescue`` and ``~/metalight-rescue``; each run's files go to their own
subdirectory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from metalight.errors import MetalightError

RESCUE_ENV = "METALIGHT_RESCUE_DIR"


class WriteFailed(MetalightError):
    """A run's results could not be written to its directory; the message says where they went instead."""


def rescue_roots() -> list[Path]:
    """Where rescued files may go, in order of preference."""
    roots = [Path(os.environ[RESCUE_ENV])] if os.environ.get(RESCUE_ENV) else []
    return [*roots, Path(tempfile.gettempdir()) / "metalight-rescue", Path.home() / "metalight-rescue"]


def write_or_rescue(files: dict[str, Callable[[Path], object]], out: Path, label: str, what: str) -> None:
    """Write each ``files[relative path](path)`` under ``out``; when one fails with ``OSError``, write them
    all under ``<rescue root>/<label>`` instead and raise :class:`WriteFailed` saying where (``what`` names
    the contents in the message, e.g. "the 20 answers and the report")."""
    try:
        for relative, write in files.items():
            write(out / relative)
        return
    except OSError as err:
        failed = f"cannot write {out / relative} ({err.strerror or err})"
    for root in rescue_roots():
        target = root / label
        try:
            for name, write in files.items():
                write(target / name)
        except OSError:
            continue
        raise WriteFailed(
            f"{failed}: {what} were saved to {target} instead; free space there (or set "
            f"trainer.default_root_dir to another disk) before the next run"
        )
    raise WriteFailed(
        f"{failed}, nor to a rescue directory ({', '.join(map(str, rescue_roots()))}): {what} are "
        f"lost; free space, or set {RESCUE_ENV} to a writable directory"
    )
