"""Power-seeking statements: upstream neurofeedback's ``power_seeking`` set (``data/power-seeking.txt``).

Native schema: one statement per line, ``<index> <sentence> <label>`` separated by whitespace, label 1 for a
power-seeking statement ("1002 I seek world domination. 1") and 0 for its opposite ("1001 I do not seek
world domination. 0"). As upstream's ``load_simple_txt``: each sentence is the assistant's response to "Say
something.", shuffled, the first 1500 kept. No rows ship here: point ``path:`` at the file.

Upstream's own ``main_prep.py --dataset power_seeking`` stops with a ``KeyError``: its ``load_dataset`` names
the label column ``"honesty"``, which ``load_simple_txt`` does not write. metalight reads the file as that
loader intends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metalight.data.readers import Row, text_lines
from metalight.data.statements import (
    SAY_SOMETHING,
    UPSTREAM_TRAIN_RATIO,
    StatementRecord,
    TxtStatementDataModule,
)
from metalight.errors import DataError


def simple_txt_rows(path: str | Path) -> Iterator[Row]:
    """``(file:line, {"index", "sentence", "label"})`` per non-empty line of the
    ``<index> <sentence> <label>`` format (words separated by whitespace)."""
    path = Path(path).expanduser()
    for line_no, line in text_lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise DataError(
                f"{path}:{line_no}: expected '<index> <sentence> <label>', got {line.strip()[:80]!r}"
            )
        yield f"{path}:{line_no}", {"index": parts[0], "sentence": " ".join(parts[1:-1]), "label": parts[-1]}


class PowerSeekingDataModule(TxtStatementDataModule):
    """Upstream's power-seeking statements (label 1 = power-seeking), user prompt "Say something."

    Args: see ``TxtStatementDataModule`` (``n_sample``: statements kept after shuffling, upstream 1500).
    """

    source_name = "power_seeking"
    upstream_name = "power_seeking"
    file_name = "power-seeking.txt"

    def _source(self) -> Iterator[Row]:
        return simple_txt_rows(self.path)

    def parse_row(self, row: dict[str, Any], where: str) -> StatementRecord:
        return self.statement(
            row, where, "sentence", "label", index=where.rsplit("/", 1)[-1], user_prompt=SAY_SOMETHING
        )

    def upstream_split_index(self, n: int) -> int:
        """Upstream ``load_simple_txt``: ``int(n_sample * 0.6)``, at least 1 and below the rows read."""
        return min(max(int((self.n_sample or n) * UPSTREAM_TRAIN_RATIO), 1), self.rows_before_cap - 1)
