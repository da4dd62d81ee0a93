"""Alpaca comparisons (the ICM paper's reward-modelling testbed): is response 1 more helpful than response 2?

Native schema: AlpacaFarm's preference sets (hub ``tatsu-lab/alpaca_farm``, configs
``alpaca_human_preference`` / ``alpaca_gpt4_preference``): ``instruction``, ``input``, ``output_1``,
``output_2``, ``preference`` (1 or 2: the preferred output). Each row yields two claims, one per order of the
responses: "Response 1 is more helpful and harmless than Response 2" with keys ``A>B`` (output_1 shown first)
and ``B>A`` (output_2 shown first). Exactly one of them holds — the keys come from the presentation order,
not from the label. No Alpaca rows ship with metalight: point ``path`` or ``hub_name`` at the data.
"""

from __future__ import annotations

from typing import Any

from metalight.data.claims import ClaimDataModule, ClaimRecord, require_text
from metalight.errors import DataError


class AlpacaComparisonDataModule(ClaimDataModule):
    """AlpacaFarm preference pairs as comparison claims in both orders (see module docstring).

    Args:
        (see ``QADataModule``)
    """

    testbed = "alpaca"
    template = "comparison"
    hub_splits_default = {"train": "preference", "val": "", "test": ""}

    def parse_row(self, row: dict[str, Any], where: str) -> list[ClaimRecord]:
        instruction = require_text(row, "instruction", where)
        extra = row.get("input") or ""
        if not isinstance(extra, str):
            raise DataError(f"{where}: `input` must be a string (empty when the instruction has none)")
        question = f"{instruction}\n{extra.strip()}" if extra.strip() else instruction
        first, second = require_text(row, "output_1", where), require_text(row, "output_2", where)
        preference = row.get("preference")
        if preference is not None and str(preference).strip() not in {"1", "2", "1.0", "2.0"}:
            raise DataError(f"{where}: preference must be 1 or 2 (the preferred output), got {preference!r}")
        gold = None if preference is None else int(float(preference))
        group = str(row.get("id", where))
        meta = {"source": "alpaca"}
        return [
            ClaimRecord(
                id=f"{group}#A>B",
                question=question,
                claim=first,
                claim_2=second,
                label=None if gold is None else int(gold == 1),
                consistency_id=group,
                consistency_key="A>B",
                meta=meta,
            ).validate(where),
            ClaimRecord(
                id=f"{group}#B>A",
                question=question,
                claim=second,
                claim_2=first,
                label=None if gold is None else int(gold == 2),
                consistency_id=group,
                consistency_key="B>A",
                meta=meta,
            ).validate(where),
        ]
