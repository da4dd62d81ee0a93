"""Row readers for local files (jsonl, json, parquet, csv) and hub datasets, each row with its location."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from metalight.errors import DataError, MissingPackageError

Row = tuple[str, dict[str, Any]]
"""``(where, row)``: where = "file:line" (or "file: record N") for error messages."""

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def read_rows(path: str | Path, json_key: str | None = None) -> Iterator[Row]:
    """Yield ``(where, row)`` from a local file; ``json_key`` picks the list inside a JSON object."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data file not found: {path}; check `path:` in the data config (or use `hub_name:`)")
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix == ".jsonl":
        yield from _jsonl_rows(path)
    elif suffix == ".json":
        yield from _json_rows(path, json_key)
    elif suffix == ".parquet":
        yield from _parquet_rows(path)
    elif suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                yield f"{path}:{line}", row
    else:
        raise DataError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUFFIXES)}")


def _jsonl_rows(path: Path) -> Iterator[Row]:
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{where}: not valid JSON ({err.msg} at column {err.colno})") from err
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object per line, got {type(row).__name__}")
            yield where, row


def _json_rows(path: Path, json_key: str | None) -> Iterator[Row]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err
    if isinstance(data, dict):
        if json_key is None:
            list_keys = [k for k, v in data.items() if isinstance(v, list)]
            if len(list_keys) != 1:
                raise DataError(f"{path}: a JSON object with list fields {list_keys}; set json_key to the one "
                                f"holding the rows")
            json_key = list_keys[0]
        if json_key not in data:
            raise DataError(f"{path}: no key {json_key!r} in the JSON object (keys: {sorted(data)[:10]})")
        data = data[json_key]
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"{path}: record {index}: expected an object, got {type(row).__name__}")
        yield f"{path}: record {index}", row


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    for index, row in enumerate(pq.read_table(path).to_pylist()):
        yield f"{path}: row {index}", row


def hub_rows(name: str, config: str | None, split: str) -> Iterator[Row]:
    """Yield ``(where, row)`` from a ``datasets`` hub dataset (needs network or a local HF cache)."""
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - datasets is a core dependency
        raise MissingPackageError("reading hub datasets needs `pip install datasets`") from err
    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # datasets raises many types for offline / missing data
        raise DataError(f"hub dataset {name!r} (config {config!r}, split {split!r}) could not be loaded: "
                        f"{str(err).splitlines()[0][:200]}; download the official file and set `path:`") from err
    for index, row in enumerate(dataset):
        yield f"{name}[{split}] row {index}", row
