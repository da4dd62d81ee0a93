"""What the scripts read back from runs and write into the docs: a run's report and samples, its TensorBoard
scalars, and a marked section of a doc file replaced by new results."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

from metalight.errors import ConfigError
from metalight.io import atomic_write_text


def resolve_report(path: str | Path) -> Path:
    """A report file: ``path`` itself, ``path/report.json``, or the newest ``path/version_N/report.json``."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / "report.json").is_file():
        return path / "report.json"
    versions = sorted(
        path.glob("version_*/report.json"), key=lambda p: int(re.sub(r"\D", "", p.parent.name) or -1)
    )
    if versions:
        return versions[-1]
    raise ConfigError(
        f"no report.json at {path} (nor in {path}/version_*/); pass a run directory such as "
        f"runs/<experiment>/version_0 or a report file"
    )


def read_samples(path: str | Path) -> list[SimpleNamespace]:
    """The per-question rows of a samples file (``<run>/samples/<split>.jsonl``), as attribute objects."""
    lines = Path(path).read_text().splitlines()
    return [SimpleNamespace(**json.loads(line)) for line in lines if line.strip()]


class Scalar(NamedTuple):
    """One logged value: wall-clock time (seconds since the epoch), step, value."""

    wall_time: float
    step: int
    value: float


def read_scalars(run: str | Path, tags: tuple[str, ...] | None = None) -> dict[str, list[Scalar]]:
    """Every logged value of each scalar tag (all tags, or those of ``tags`` that were logged) in a
    TensorBoard run directory, in logging order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    known = events.Tags().get("scalars", [])
    wanted = known if tags is None else [tag for tag in tags if tag in known]
    return {tag: [Scalar(e.wall_time, e.step, e.value) for e in events.Scalars(tag)] for tag in wanted}


def replace_section(doc: str | Path, begin: str, end: str, text: str, required: bool = True) -> bool:
    """Replace what stands between the markers ``begin`` and ``end`` of ``doc`` by ``text`` (atomically; the
    markers stay). A doc without the markers is an error (``required``) or left alone; returns whether it was
    written."""
    doc = Path(doc)
    body = doc.read_text() if doc.is_file() else ""
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(body):
        if required:
            raise ConfigError(f"{doc} has no {begin} ... {end} section to fill; add the two marker lines")
        return False
    atomic_write_text(doc, pattern.sub(lambda _: f"{begin}\n{text}{end}", body))
    return True
