"""Checked access to the fields of a native row: a missing field or a wrong type raises ``DataError`` naming
the file and line, the field, the dataset's schema and the fix."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from metalight.errors import DataError

FIX = "fix the row or set strict: false to skip such rows"


def need(row: dict[str, Any], key: str, where: str, schema: str) -> Any:
    """``row[key]``; ``DataError`` when the field is missing (or null)."""
    value = row.get(key)
    if value is None:
        raise DataError(f"{where}: missing field `{key}` (schema: {schema}); {FIX}")
    return value


def need_str(row: dict[str, Any], key: str, where: str, schema: str) -> str:
    """A text field; ``DataError`` when missing or not a string (emptiness is checked by ``QARecord``)."""
    value = need(row, key, where, schema)
    if not isinstance(value, str):
        raise DataError(
            f"{where}: field `{key}` must be a string, got {type(value).__name__} (schema: {schema}); {FIX}"
        )
    return value


def need_list(row: dict[str, Any], key: str, where: str, schema: str, of: type | None = str) -> list[Any]:
    """A list field whose items are ``of`` (any type when ``None``); ``DataError`` when missing or
    mistyped."""
    value = need(row, key, where, schema)
    if not isinstance(value, list) or (of is not None and not all(isinstance(v, of) for v in value)):
        item = f" of {of.__name__}" if of is not None else ""
        raise DataError(
            f"{where}: field `{key}` must be a list{item}, got {_describe(value)} (schema: {schema}); {FIX}"
        )
    return value


def need_dict(row: dict[str, Any], key: str, where: str, schema: str) -> dict[str, Any]:
    """An object field; ``DataError`` when missing or not an object."""
    value = need(row, key, where, schema)
    if not isinstance(value, dict):
        raise DataError(
            f"{where}: field `{key}` must be an object, got {type(value).__name__} (schema: {schema}); {FIX}"
        )
    return value


def as_records(value: Any, where: str, name: str, schema: str) -> list[dict[str, Any]]:
    """A list of objects, given either as such (JSON files) or column-wise as a dict of equal-length lists
    (how ``datasets`` returns a ``Sequence`` of structs)."""
    if isinstance(value, list):
        if not all(isinstance(v, dict) for v in value):
            raise DataError(f"{where}: `{name}` must be a list of objects (schema: {schema}); {FIX}")
        return value
    if isinstance(value, dict):
        columns = {k: v for k, v in value.items() if isinstance(v, list)}
        lengths = {len(v) for v in columns.values()}
        if len(columns) == len(value) and len(lengths) <= 1:
            n = lengths.pop() if lengths else 0
            return [{k: v[i] for k, v in columns.items()} for i in range(n)]
    raise DataError(
        f"{where}: `{name}` must be a list of objects or a dict of equal-length lists, got "
        f"{_describe(value)} (schema: {schema}); {FIX}"
    )


def unique_texts(texts: Iterable[Any]) -> list[str]:
    """Stripped, non-empty strings in first-seen order without repeats (non-strings are ignored)."""
    return list(dict.fromkeys(t.strip() for t in texts if isinstance(t, str) and t.strip()))


def _describe(value: Any) -> str:
    if isinstance(value, list):
        kinds = sorted({type(v).__name__ for v in value})
        return f"a list of {'/'.join(kinds)}" if kinds else "an empty list"
    return type(value).__name__
