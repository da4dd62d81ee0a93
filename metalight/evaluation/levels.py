"""Per-level summaries of an evaluation: accuracy and mean P(yes) for each difficulty level of a testbed.

A model that knows where it is competent says yes where it is right: its mean P(yes) per level follows its
accuracy per level. Results are grouped by the ``family`` and ``level`` their record carried in ``meta`` (the
competence-band testbed's records do); results without a level are left out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class LevelStats:
    """One level's numbers: ``n`` answers, ``accuracy`` and ``yes_ratio`` in [0, 1], ``mean_p_yes`` (NaN when
    no answer carries a P(yes))."""

    family: str
    level: int
    name: str
    n: int
    accuracy: float
    mean_p_yes: float
    yes_ratio: float

    @property
    def label(self) -> str:
        """``L<level> <name>``, the level's axis label."""
        return f"L{self.level} {self.name}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values."""
        return asdict(self)


def _meta(result: Any) -> dict[str, Any]:
    meta = getattr(result, "meta", None)
    return meta if isinstance(meta, dict) else {}


def level_stats(results: Iterable[Any]) -> list[LevelStats]:
    """Per (family, level) numbers of ``results`` (objects with ``correct``, ``said_yes``, ``p_yes`` and a
    ``meta`` dict), sorted by family then level."""
    groups: dict[tuple[str, int], list[Any]] = {}
    names: dict[tuple[str, int], str] = {}
    for result in results:
        meta = _meta(result)
        if meta.get("level") is None:
            continue
        key = (str(meta.get("family", "")), int(meta["level"]))
        groups.setdefault(key, []).append(result)
        names[key] = str(meta.get("level_name", ""))
    out = []
    for key in sorted(groups):
        rows = groups[key]
        p_yes = [float(r.p_yes) for r in rows if r.p_yes is not None and not math.isnan(float(r.p_yes))]
        out.append(
            LevelStats(
                key[0],
                key[1],
                names[key],
                len(rows),
                sum(bool(r.correct) for r in rows) / len(rows),
                sum(p_yes) / len(p_yes) if p_yes else float("nan"),
                sum(bool(r.said_yes) for r in rows) / len(rows),
            )
        )
    return out


def format_levels(before: list[LevelStats], after: list[LevelStats] | None = None) -> str:
    """A console table: per level, n, accuracy and mean P(yes) (before → after when ``after`` is given)."""
    later = {(s.family, s.level): s for s in after or []}
    width = max([len("level"), *(len(f"{s.family} {s.label}") for s in before)])
    lines = [f"{'level':<{width}} {'n':>4}  {'accuracy':>15}  {'mean P(yes)':>15}"]
    for s in before:
        a = later.get((s.family, s.level))
        acc = f"{s.accuracy:.2f}" + (f" -> {a.accuracy:.2f}" if a else "")
        p = f"{s.mean_p_yes:.3f}" + (f" -> {a.mean_p_yes:.3f}" if a else "")
        lines.append(f"{s.family + ' ' + s.label:<{width}} {s.n:>4}  {acc:>15}  {p:>15}")
    return "\n".join(lines)
