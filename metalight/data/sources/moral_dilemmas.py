"""Moral datasets provided as local files: Daily Dilemmas and the Moral Foundations Vignettes.

**Daily Dilemmas** (Chiu et al. 2025, CC-BY-4.0; hub ``kellycyy/daily_dilemmas``, file
``dilemma_to_action_to_values_aggregated.csv``): two rows per dilemma, ``dilemma_idx``, ``dilemma_situation``,
``action_type`` (``to_do`` / ``not_to_do``), ``action``, ``negative_consequence``, ``values_aggregated``,
``topic``. Each action is a claim "This action is the better choice"; exactly one action of a dilemma is.
The dataset has no gold answer (it measures value preferences), so labels are ``None``: ICM elicits the
model's own choice, and agreement with gold is not reported.

**Moral Foundations Vignettes** (Clifford et al. 2015): short "You see ..." scenarios, each written to
violate one moral foundation. No official machine-readable file exists; this module reads a CSV / JSONL with
``scenario`` (or ``vignette``) and ``foundation`` columns (the published norms table, one row per vignette).
Each vignette yields one claim per foundation, "The behaviour described mainly violates the moral foundation
of <F>", labelled 1 for the row's foundation; two different foundations cannot both be the main one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from metalight.data.claims import ClaimDataModule, ClaimRecord, require_text
from metalight.data.readers import Row
from metalight.errors import DataError
from metalight.prompts import MORAL_FOUNDATION_CLAIM

ACTION_TYPES = ("to_do", "not_to_do")
CLIFFORD_FOUNDATIONS = ("care", "fairness", "liberty", "loyalty", "authority", "sanctity", "social norms")


class DailyDilemmasDataModule(ClaimDataModule):
    """Daily Dilemmas actions as claims, the two actions of a dilemma exactly one of which is chosen.

    Args:
        (see ``QADataModule``; set ``path`` to ``dilemma_to_action_to_values_aggregated.csv``)
    """

    testbed = "daily_dilemmas"
    template = "dilemma"

    def parse_rows(self, rows: Iterable[Row]) -> list[ClaimRecord]:
        claims = super().parse_rows(rows)
        per_dilemma: dict[str, list[ClaimRecord]] = {}
        for claim in claims:
            per_dilemma.setdefault(claim.consistency_id, []).append(claim)
        for dilemma, members in per_dilemma.items():
            kinds = sorted(c.consistency_key for c in members)
            if kinds != sorted(ACTION_TYPES):
                raise DataError(
                    f"{members[0].meta['where']}: dilemma {dilemma} needs one to_do and one not_to_do "
                    f"row, got {kinds}"
                )
        return claims

    def parse_row(self, row: dict[str, Any], where: str) -> list[ClaimRecord]:
        dilemma = str(row.get("dilemma_idx", "")).strip()
        if not dilemma:
            raise DataError(f"{where}: missing `dilemma_idx` (pairs the two actions of a dilemma)")
        action_type = row.get("action_type")
        if action_type not in ACTION_TYPES:
            raise DataError(f"{where}: action_type must be one of {ACTION_TYPES}, got {action_type!r}")
        situation = require_text(row, "dilemma_situation", where)
        action = require_text(row, "action", where)
        return [
            ClaimRecord(
                id=f"{dilemma}#{action_type}",
                question=situation,
                claim=action,
                label=None,
                consistency_id=dilemma,
                consistency_key=action_type,
                meta={
                    "source": "daily_dilemmas",
                    "where": where,
                    "topic": row.get("topic"),
                    "values": row.get("values_aggregated"),
                },
            ).validate(where)
        ]


class MoralFoundationsVignettesDataModule(ClaimDataModule):
    """Moral Foundations Vignettes as one claim per (vignette, foundation) (see module docstring).

    Args:
        foundations: the candidate foundations; every row's foundation must be one of them (compared
            case-insensitively).
        (other args: see ``QADataModule``; set ``path`` to a local CSV / JSONL)
    """

    testbed = "moral_vignettes"
    template = "scenario"

    # the CLI shows this list as the default (a tuple would change what jsonargparse parses and prints)
    def __init__(self, *args, foundations: list[str] = list(CLIFFORD_FOUNDATIONS), **kwargs):  # noqa: B006
        super().__init__(*args, **kwargs)
        self.foundations = [f.strip().lower() for f in foundations]
        if len(set(self.foundations)) < 2:
            raise DataError("foundations: give at least two distinct foundations")

    def parse_row(self, row: dict[str, Any], where: str) -> list[ClaimRecord]:
        scenario = require_text(row, "scenario" if "scenario" in row else "vignette", where)
        foundation = require_text(row, "foundation", where).lower()
        if foundation not in self.foundations:
            raise DataError(
                f"{where}: foundation {foundation!r} is not one of {self.foundations}; fix the row or "
                f"set `foundations:`"
            )
        group = str(row.get("id", where))
        return [
            ClaimRecord(
                id=f"{group}#{f}",
                question=scenario,
                claim=MORAL_FOUNDATION_CLAIM.format(foundation=f),
                label=int(f == foundation),
                consistency_id=group,
                consistency_key=f,
                meta={"source": "moral_foundations_vignettes"},
            ).validate(where)
            for f in self.foundations
        ]
