"""Claims for unsupervised elicitation (ICM): statements about an item that are either true or false.

Every ICM testbed maps its native rows to :class:`ClaimRecord` s. Claims about the same item share a
``consistency_id``; the testbed's consistency rule compares their ``consistency_key`` s (a GSM8K solution's
final answer, a comparison's orientation ``A>B`` / ``B>A``). Both come from the data itself, never from the
gold label: upstream's TruthfulQA loader derived the key from the label, which leaks it into the search.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from metalight.data.datamodule import QADataModule
from metalight.data.readers import Row
from metalight.errors import DataError
from metalight.prompts import icm_prompt


@dataclass(frozen=True)
class ClaimRecord:
    """A claim to be labelled true (1) or false (0).

    ``question`` is what the claim is about (a question, instruction or scenario), ``claim`` the statement
    or candidate (a solution, an answer, response 1), ``claim_2`` the second response of a comparison.
    ``label`` is the gold label when the dataset has one (``None`` otherwise); the search never reads it.
    """

    id: str
    question: str
    claim: str
    label: int | None
    consistency_id: str
    consistency_key: str
    claim_2: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def validate(self, where: str) -> ClaimRecord:
        """Raise ``DataError`` naming ``where`` (file:line) if a field is empty or mistyped."""
        for name in ("question", "claim", "consistency_id", "consistency_key"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise DataError(
                    f"{where}: empty or non-text {name} (claim {self.id!r}); fix the row or set "
                    f"strict: false to skip it"
                )
        if self.claim_2 is not None and (not isinstance(self.claim_2, str) or not self.claim_2.strip()):
            raise DataError(
                f"{where}: empty second response (claim {self.id!r}); fix the row or set strict: false"
            )
        if self.label not in (0, 1, None):
            raise DataError(f"{where}: label must be 0, 1 or missing, got {self.label!r} (claim {self.id!r})")
        return self


def as_label(value: Any, where: str, name: str = "label") -> int:
    """A 0/1 label from a bool, 0/1 int or "0"/"1"/"true"/"false" string; ``DataError`` otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip().lower() in {"0", "1", "true", "false"}:
        return int(value.strip().lower() in {"1", "true"})
    raise DataError(f"{where}: {name} must be 0/1 or true/false, got {value!r}")


def require_text(row: dict[str, Any], key: str, where: str) -> str:
    """The non-empty string ``row[key]``; ``DataError`` naming the key otherwise."""
    value = row.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: missing or empty `{key}` (expected a non-empty string)")
    return value.strip()


class ClaimDataModule(QADataModule):
    """Base of the ICM testbeds: rows map to lists of claims; splits and caps keep claim groups whole.

    Subclasses set ``testbed`` (names the consistency rule in ``metalight.methods.icm.consistency``) and
    ``template`` (the prompt in ``metalight.prompts.ICM_TEMPLATES``) and return a list of claims from
    ``parse_row``. ``max_samples`` counts claims and is met with whole groups, drawn in a seeded order.
    """

    testbed: ClassVar[str]
    template: ClassVar[str] = "claim"

    def parse_rows(self, rows: Iterable[Row]) -> list[ClaimRecord]:
        records = [claim for claims in super().parse_rows(rows) for claim in claims]
        seen: dict[str, str] = {}
        for record in records:
            if record.id in seen:
                raise DataError(
                    f"{type(self).__name__}: claim id {record.id!r} occurs twice; ids must be unique "
                    f"(check the rows' ids)"
                )
            seen[record.id] = record.consistency_id
        return records

    def group_of(self, record: ClaimRecord) -> str:
        """Claims of one consistency group stay in the same split."""
        return record.consistency_id

    def _cap(self, split: str, records: list[ClaimRecord], label_fn=None) -> list[ClaimRecord]:
        # Whole groups, not single claims: ``stratify`` does not apply to groups of mixed labels.
        limit = self.max_samples.get(split) if isinstance(self.max_samples, dict) else self.max_samples
        if limit is None or limit >= len(records):
            return records
        groups = list(dict.fromkeys(r.consistency_id for r in records))
        random.Random(f"{self.seed}-{split}").shuffle(groups)
        sizes = {g: 0 for g in groups}
        for record in records:
            sizes[record.consistency_id] += 1
        keep, total = set(), 0
        for group in groups:
            if keep and total + sizes[group] > limit:
                continue
            keep.add(group)
            total += sizes[group]
        return [r for r in records if r.consistency_id in keep]

    def render(self, record: ClaimRecord) -> str:
        """The claim's prompt text, ending just before the label word (``... I think this claim is``)."""
        return icm_prompt(self.template, record.question, record.claim, record.claim_2)
