"""ETHICS commonsense morality (Hendrycks et al. 2021) as ICM claims about first-person scenarios.

Native schema (hub ``hendrycks/ethics`` config ``commonsense``; official ``cm_train.csv`` / ``cm_test.csv``):
``label`` (1 = what the narrator did is clearly morally wrong, 0 = it is not), ``input`` (the scenario),
``is_short`` (a one-to-two sentence scenario rather than a long Reddit post), ``edited``.

Each scenario yields a pair of claims, one per framing: "What I did was morally acceptable." (key
``acceptable``) and "What I did was clearly morally wrong." (key ``wrong``). Exactly one framing holds, the
paired consistency ETHICS commonsense allows (its rows carry no links between scenarios). No ETHICS rows ship
with metalight: point ``path`` at a CSV or ``hub_name`` at the hub dataset.
"""

from __future__ import annotations

from typing import Any

from metalight.data.claims import ClaimDataModule, ClaimRecord, as_label, require_text
from metalight.errors import ConfigError
from metalight.prompts import ETHICS_FRAMINGS


class EthicsCommonsenseDataModule(ClaimDataModule):
    """ETHICS commonsense scenarios, each as an acceptable / wrong claim pair.

    Args:
        short_only: keep only ``is_short`` scenarios (the long ones are Reddit posts of hundreds of words,
            too long for many in-context demonstrations).
        (other args: see ``QADataModule``)
    """

    testbed = "ethics"
    template = "scenario"

    def __init__(self, *args, short_only: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.short_only = short_only
        if self.hub_name and self.hub_config is None:
            raise ConfigError("EthicsCommonsenseDataModule: set hub_config: commonsense for hendrycks/ethics")

    def parse_row(self, row: dict[str, Any], where: str) -> list[ClaimRecord] | None:
        scenario = require_text(row, "input", where)
        wrong = as_label(row.get("label"), where)
        if self.short_only and "is_short" in row and not as_label(row["is_short"], where, "is_short"):
            return None
        group = str(row.get("id", where))
        meta = {"source": "ethics-commonsense", "edited": row.get("edited")}
        return [
            ClaimRecord(
                id=f"{group}#{key}",
                question=scenario,
                claim=text,
                label=wrong if key == "wrong" else 1 - wrong,
                consistency_id=group,
                consistency_key=key,
                meta=meta,
            ).validate(where)
            for key, text in ETHICS_FRAMINGS.items()
        ]
