"""Upstream ICM's own data files (``Jiaxin-Wen/Unsupervised-Elicitation``: ``data/train_{testbed}.json``).

Native schema: a JSON list of claim rows ``{question, choice, [choice_2], label (0/1), consistency_id}``, plus
``answer`` (the solution's final answer) for gsm8k. Each row is one claim; rows sharing ``consistency_id``
form a group. Keys and prompts are upstream's (``ICM.py::load_data``):

* ``gsm8k``: key = ``answer``; "Question / Claim" prompt; two different answers cannot both be true.
* ``truthfulqa``: key = ``'A'`` if label else ``'B'``; "Question / Claim" prompt; upstream's rule, as for
  gsm8k.
* ``alpaca``: key = ``A>B`` if label else ``B>A``; "Human / Response 1 / Response 2" prompt (newlines inside
  the responses removed); exactly one claim of a pair is true.
* ``truthfulqa_preference``: as alpaca with "Question / Answer 1 / Answer 2 ... more truthful".

Except for gsm8k the key is derived from the gold label, as upstream does; for truthfulqa the rule then ties
every gold-true answer together (a leak), for the paired testbeds it only says the two claims differ. That
reproduces upstream's numbers; for label-free keys use the ``alpaca_comparisons`` and
``truthfulqa_claims`` modules on the native datasets. The files are not in upstream's repository (its README
links them): point ``path`` at one.
"""

from __future__ import annotations

from typing import Any, Literal

from metalight.data.claims import ClaimDataModule, ClaimRecord, as_label, require_text
from metalight.data.readers import ROW_KEY, numbered
from metalight.errors import ConfigError, DataError

ICMTestbed = Literal["alpaca", "gsm8k", "truthfulqa", "truthfulqa_preference"]

# testbed -> (consistency rule in metalight.methods.icm.consistency.RULES, template in metalight.prompts)
SPECS: dict[str, tuple[str, str]] = {
    "alpaca": ("alpaca", "comparison"),
    "gsm8k": ("gsm8k", "claim"),
    # Upstream's one rule on keys 'A'/'B': two claims both true must share a key, as for MC1 answers.
    "truthfulqa": ("truthfulqa-mc1", "claim"),
    "truthfulqa_preference": ("truthfulqa_preference", "preference"),
}
PAIRED = {"alpaca", "truthfulqa_preference"}


class ICMFileDataModule(ClaimDataModule):
    """Rows of upstream ICM's ``train_{testbed}.json`` as claims with upstream's keys and prompts.

    Args:
        testbed: which upstream file schema and rule: ``alpaca``, ``gsm8k``, ``truthfulqa`` or
            ``truthfulqa_preference`` (see the module docstring).
        (other args: see ``QADataModule``)
    """

    def __init__(self, *args, testbed: ICMTestbed = "gsm8k", **kwargs):
        super().__init__(*args, **kwargs)
        if testbed not in SPECS:
            raise ConfigError(
                f"ICMFileDataModule: testbed {testbed!r} is not an upstream ICM file; use one of "
                f"{', '.join(SPECS)}"
            )
        self.file_testbed = testbed

    @property
    def testbed(self) -> str:
        return SPECS[self.file_testbed][0]

    @property
    def template(self) -> str:
        return SPECS[self.file_testbed][1]

    def _source(self):
        return numbered(super()._source())

    def parse_row(self, row: dict[str, Any], where: str) -> list[ClaimRecord]:
        testbed = self.file_testbed
        question, claim = require_text(row, "question", where), require_text(row, "choice", where)
        if "label" not in row:
            raise DataError(f"{where}: missing `label` (0/1); upstream's {testbed} rows carry one")
        label = as_label(row["label"], where)
        group = row.get("consistency_id")
        if isinstance(group, bool) or not isinstance(group, (str, int)) or not str(group).strip():
            raise DataError(f"{where}: `consistency_id` must be a non-empty string or integer, got {group!r}")
        claim_2 = require_text(row, "choice_2", where) if testbed in PAIRED else None
        if testbed == "gsm8k":
            answer = row.get("answer")
            if (
                isinstance(answer, bool)
                or not isinstance(answer, (str, int, float))
                or not str(answer).strip()
            ):
                raise DataError(f"{where}: missing or empty `answer` (the solution's final answer) for gsm8k")
            key = str(answer).strip()
        elif testbed == "truthfulqa":
            key = "A" if label else "B"
        else:
            key = "A>B" if label else "B>A"
        return [
            ClaimRecord(
                id=f"{testbed}-{row[ROW_KEY]}",
                question=question,
                claim=claim,
                claim_2=claim_2,
                label=label,
                consistency_id=str(group).strip(),
                consistency_key=key,
                meta={"source": f"icm:{testbed}"},
            ).validate(where)
        ]
