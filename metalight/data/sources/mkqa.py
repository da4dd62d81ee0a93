"""MKQA (Longpre et al. 2021; CC BY 3.0): 10,000 Natural Questions queries with answers in 26 languages.

Native schema, on the hub (``apple/mkqa``, one ``train`` split) and in the official ``mkqa.jsonl.gz``::

    {"example_id": str | int, "query": str (English),
     "queries": {"en": str, "ko": str, "zh_cn": str, ...},
     "answers": {"en": [{"type": "entity" | ... (the hub gives the class index), "entity": str,
                         "text": str | null, "aliases": [str]}], "ko": [...], ...}}

The language is chosen by ``language``: the question is ``queries[language]`` (falling back to ``query``,
as ESMA) and the aliases are every answer's ``text`` plus its ``aliases``, in order without repeats.
Questions with no answer text in that language (types ``unanswerable`` and ``long_answer``) are left out on
purpose (ESMA keeps them with an empty answer list, which grading always scores wrong). No rows ship with
metalight: set ``path:`` or ``hub_name: apple/mkqa``.
"""

from __future__ import annotations

from typing import Any

from metalight.data.datamodule import QADataModule
from metalight.data.fields import as_records, need, need_dict, unique_texts
from metalight.data.records import QARecord
from metalight.errors import ConfigError, DataError

LANGUAGES = (
    "ar",
    "da",
    "de",
    "en",
    "es",
    "fi",
    "fr",
    "he",
    "hu",
    "it",
    "ja",
    "ko",
    "km",
    "ms",
    "nl",
    "no",
    "pl",
    "pt",
    "ru",
    "sv",
    "th",
    "tr",
    "vi",
    "zh_cn",
    "zh_hk",
    "zh_tw",
)
ANSWER_TYPES = (
    "entity",
    "long_answer",
    "unanswerable",
    "date",
    "number",
    "number_with_unit",
    "short_phrase",
    "binary",
)  # the hub's class-label order
SCHEMA = "example_id, query: str, queries: {lang: str}, answers: {lang: [{type, text: str, aliases: [str]}]}"


class MKQADataModule(QADataModule):
    """MKQA in one language.

    Args:
        language: one of MKQA's 26 language codes (``en``, ``ko``, ``zh_cn``, ``es``, ...); also stored as
            ``meta["language"]`` so prompts can use it.
        (other args: see ``QADataModule``; the hub's single split is divided by the fractions -- set
        ``path: {val: mkqa.jsonl.gz}`` to evaluate on all 10,000 like ESMA)
    """

    hub_splits_default = "train"

    def __init__(self, *args, language: str = "en", **kwargs):
        super().__init__(*args, **kwargs)
        if language not in LANGUAGES:
            raise ConfigError(
                f"MKQADataModule: unknown language {language!r}; use one of {', '.join(LANGUAGES)}"
            )
        self.language = language

    def parse_row(self, row: dict[str, Any], where: str) -> QARecord | None:
        qid = need(row, "example_id", where, SCHEMA)
        queries = need_dict(row, "queries", where, SCHEMA)
        question = queries.get(self.language) or row.get("query")
        if question is None:
            raise DataError(
                f"{where}: no question in `queries.{self.language}` nor `query` (schema: {SCHEMA})"
            )
        answers = need_dict(row, "answers", where, SCHEMA)
        if self.language not in answers:
            raise DataError(f"{where}: missing field `answers.{self.language}` (schema: {SCHEMA})")
        entries = as_records(answers[self.language] or [], where, f"answers.{self.language}", SCHEMA)
        texts, types = [], []
        for entry in entries:
            kind = entry.get("type")
            known = isinstance(kind, int) and 0 <= kind < len(ANSWER_TYPES)
            types.append(ANSWER_TYPES[kind] if known else kind)
            aliases = entry.get("aliases") or []
            if not isinstance(aliases, list):
                raise DataError(
                    f"{where}: `answers.{self.language}[].aliases` must be a list (schema: {SCHEMA})"
                )
            texts += [entry.get("text"), *aliases]
        aliases = unique_texts(texts)
        if not aliases and types and all(t in ("unanswerable", "long_answer") for t in types):
            return None
        return QARecord(
            id=str(qid),
            question=question,
            answers=aliases,
            meta={"source": "mkqa", "language": self.language, "answer_type": types[0] if types else None},
        ).validate(where)
