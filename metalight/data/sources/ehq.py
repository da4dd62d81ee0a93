"""EHQ-3000 (Senol et al.; data CC BY 4.0, package code MIT): 3,000 questions a model should decline,
read from the installed ``ehq==0.4.0`` package (``ehq/resources/project/data/releases/EHQ-3000.json``).

Four balanced categories of 750 (each 5 subcategories of 150), all with ``expected_knowability`` 0:

* ``FEQ`` fabricated entities (``correct_answer`` is the marker ``[FABRICATED]``),
* ``PCQ`` real events after the model's knowledge cut-off (a real ``correct_answer``; dated 2026),
* ``HNQ`` real but deliberately obscure facts (a real ``correct_answer`` and ``acceptable_answers``),
* ``CCQ`` questions about a synthetic ``document`` whose answer-bearing span is withheld (``[REDACTED]``).

Native schema (one JSON list; other fields -- provenance, review, evidence -- are not read)::

    {"question_id": str, "category": str, "subcategory": str, "question": str, "correct_answer": str,
     "acceptable_answers": [str], "expected_knowability": 0 | 1, "document": str (CCQ only), ...}

Answer mapping (as upstream's ``ehq.evaluation.correctness``): ``answers`` are ``correct_answer`` plus
``acceptable_answers`` without the markers; FEQ and CCQ questions have no answer (``answers == []``), so
every grader scores any reply to them as wrong, and a model that does know an HNQ / PCQ answer is graded
correct. ``meta`` keeps ``category``, ``subcategory``, ``expected_knowability``, ``answerable`` (has a gold
answer) and ``should_decline`` (knowability 0): for judgment training every EHQ question is a ``cannot``
example, for IDK evaluation declining is the right reply. CCQ documents become ``context`` (the prompt shows
them, as upstream's answer prompt does). Questions sharing upstream's ``split_group_id`` (one source or
entity) stay in one split. Upstream marks EHQ-3000 as evaluation-only: training on it
contaminates later evaluation and must be disclosed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from metalight.data.datamodule import QADataModule
from metalight.data.fields import need, need_list, need_str, unique_texts
from metalight.data.packaged import packaged_file
from metalight.data.readers import read_rows
from metalight.data.records import QARecord
from metalight.errors import ConfigError, DataError

PACKAGE, RELEASE_FILE = "ehq", "releases/EHQ-3000.json"
CATEGORIES = ("FEQ", "PCQ", "HNQ", "CCQ")
MARKERS = {"[FABRICATED]", "[REDACTED]"}
SCHEMA = (
    "question_id: str, category: FEQ|PCQ|HNQ|CCQ, subcategory: str, question: str, "
    "correct_answer: str, acceptable_answers: [str], expected_knowability: 0|1, document: str (CCQ)"
)


class EHQDataModule(QADataModule):
    """EHQ-3000 questions (all categories by default), split by fractions within each category.

    Args:
        categories: the categories to keep (default all four).
        documents: give CCQ questions their redacted document as ``context`` (default true); false asks
            them closed-book.
        (other args: see ``QADataModule``; ``path`` may name another file in this schema; ``stratify``
        defaults to ``category``, so every split keeps the 1:1:1:1 balance)
    """

    def __init__(
        self,
        *args,
        categories: list[str] | None = None,
        documents: bool = True,
        stratify: bool | str = "category",
        **kwargs,
    ):
        super().__init__(*args, stratify=stratify, **kwargs)
        unknown = set(categories or ()) - set(CATEGORIES)
        if unknown:
            raise ConfigError(f"EHQDataModule: unknown categories {sorted(unknown)}; use {list(CATEGORIES)}")
        if isinstance(self.path, dict) or self.hub_name:
            raise ConfigError(
                "EHQDataModule reads one EHQ JSON file: set `path:` to a file (or leave it "
                "unset for the packaged EHQ-3000)"
            )
        self.categories = list(categories) if categories else list(CATEGORIES)
        self.documents = documents

    def _file(self) -> Path:
        return Path(self.path) if self.path else packaged_file(PACKAGE, RELEASE_FILE)

    def _source(self):
        return read_rows(self._file())

    def describe_name(self) -> str:
        return f"EHQDataModule({self._file()})"

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord | None:
        category = need_str(row, "category", where, SCHEMA)
        if category not in CATEGORIES:
            raise DataError(f"{where}: unknown category {category!r} (schema: {SCHEMA})")
        if category not in self.categories:
            return None
        qid = need(row, "question_id", where, SCHEMA)
        question = need_str(row, "question", where, SCHEMA)
        gold = [
            need_str(row, "correct_answer", where, SCHEMA),
            *need_list(row, "acceptable_answers", where, SCHEMA),
        ]
        answers = [] if category in ("FEQ", "CCQ") else [a for a in unique_texts(gold) if a not in MARKERS]
        knowability = need(row, "expected_knowability", where, SCHEMA)
        if knowability not in (0, 1):
            raise DataError(f"{where}: field `expected_knowability` must be 0 or 1, got {knowability!r}")
        document = row.get("document") if category == "CCQ" and self.documents else None
        if category == "CCQ" and self.documents and not (isinstance(document, str) and document.strip()):
            raise DataError(f"{where}: a CCQ question needs its `document` (schema: {SCHEMA})")
        meta = {
            "source": "ehq",
            "category": category,
            "subcategory": row.get("subcategory"),
            "expected_knowability": knowability,
            "answerable": bool(answers),
            "should_decline": knowability == 0,
            "group": row.get("split_group_id") or str(qid),
        }
        return QARecord(
            id=str(qid), question=question, answers=answers, context=document, meta=meta
        ).validate(where, require_answers=category in ("PCQ", "HNQ"))
