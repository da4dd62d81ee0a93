"""ETHICS commonsense morality (Hendrycks et al. 2021) as neurofeedback statements.

Native schema: ``cm_train.csv`` / ``cm_test.csv`` with columns ``label,input,is_short,edited`` (label 1 =
the narrator's action is clearly wrong, 0 = acceptable). As upstream's ``load_commonsense``: train and test
files concatenated, only ``is_short`` rows, balanced by label and interleaved (not shuffled), the first 1500
kept; each scenario is the assistant's response to "Say something.". No ETHICS rows ship with metalight: point
``path:`` at the directory with the official csvs, or at one csv.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metalight.data.readers import read_rows
from metalight.data.statements import SAY_SOMETHING, StatementDataModule, StatementRecord, parse_label
from metalight.errors import DataError

ETHICS_FILES = ("cm_train.csv", "cm_test.csv")


class CommonsenseDataModule(StatementDataModule):
    """ETHICS commonsense scenarios, label 1 = wrong.

    Args:
        short_only: keep only ``is_short`` rows (upstream: yes; the long ones are Reddit posts).
        n_sample: scenarios kept after balancing (upstream: 1500).
        (other args: see ``StatementDataModule``)
    """

    default_balance = True
    source_name = "ethics_commonsense"
    upstream_name = "commonsense"

    def __init__(self, *args, short_only: bool = True, n_sample: int | None = 1500, **kwargs):
        super().__init__(*args, n_sample=n_sample, **kwargs)
        self.short_only = short_only

    def _source(self):
        if isinstance(self.path, str) and Path(self.path).expanduser().is_dir():
            directory = Path(self.path).expanduser()
            missing = [name for name in ETHICS_FILES if not (directory / name).is_file()]
            if missing:
                raise DataError(
                    f"{directory}: missing {missing}; the ETHICS commonsense directory holds "
                    f"{' and '.join(ETHICS_FILES)}"
                )
            return (row for name in ETHICS_FILES for row in read_rows(directory / name))
        return super()._source()

    def parse_row(self, row: dict[str, Any], where: str) -> StatementRecord | None:
        if "is_short" not in row:
            raise DataError(
                f"{where}: missing column 'is_short' (ETHICS commonsense columns: "
                f"label,input,is_short,edited)"
            )
        if self.short_only and not _truthy(row["is_short"], where):
            return None
        return self.statement(
            row, where, "input", "label", index=where.rsplit("/", 1)[-1], user_prompt=SAY_SOMETHING
        )


def _truthy(value: Any, where: str) -> bool:
    """ETHICS writes booleans as ``True``/``False`` in its csvs; hub rows carry Python booleans."""
    if isinstance(value, str) and value.strip() in ("True", "False"):
        return value.strip() == "True"
    return bool(parse_label(value, where, "is_short"))
