"""Row readers for local files (jsonl, json, parquet, csv; ``.gz`` too) and hub datasets.

Every row comes with ``where``, the place an error message names: ``file:line`` for jsonl and csv,
``file:line (record N)`` for the N-th object of a JSON list (the line its ``{`` is on), ``file: row N`` for
parquet, ``name[split] row N`` for hub datasets. Text that is not UTF-8 and a corrupt or truncated ``.gz``
raise ``DataError`` naming the file and line. Text files may start with a UTF-8 byte-order mark and end lines
with CRLF (Windows editors and Excel write both; upstream neurofeedback's ``generated_true_false.csv`` has the
mark): the mark is dropped and ``\r\n`` reads as ``\n``, as pandas does.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from metalight.errors import DataError, MissingPackageError

Row = tuple[str, dict[str, Any]]
"""``(where, row)``: where names the file and line (see the module docstring) for error messages."""

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".jsonl.gz", ".json.gz", ".csv.gz")

_DECODER = json.JSONDecoder()
_BROKEN_GZIP = (EOFError, gzip.BadGzipFile, zlib.error)


class InvalidRow(dict):
    """Stands in for a JSONL line that is not valid JSON when the reader was asked to go on
    (``skip_invalid``); ``message`` names the file and line. A data module skips or raises it (``strict``)."""

    def __init__(self, message: str):
        super().__init__()
        self.message = message


_WHITESPACE = " \t\n\r"


def read_rows(path: str | Path, json_key: str | None = None, skip_invalid: bool = False) -> Iterator[Row]:
    """Yield ``(where, row)`` from a local file; ``json_key`` picks the list inside a JSON object (by default
    the object's only list-valued key); ``skip_invalid`` yields an :class:`InvalidRow` for a JSONL line that
    is not JSON instead of raising."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise DataError(
            f"data path {path} is a directory, not a file; give one of its files ({', '.join(SUFFIXES)}) "
            f"as `path:` (or a dict of files per split)"
        )
    if not path.is_file():
        raise DataError(f"data file not found: {path}; check `path:` in the data config (or use `hub_name:`)")
    name = path.name.lower()
    compressed = name.endswith(".gz")
    suffix = Path(name[:-3] if compressed else name).suffix
    if suffix == ".jsonl":
        yield from _jsonl_rows(path, compressed, skip_invalid)
    elif suffix == ".json":
        yield from _json_rows(path, _read_text(path, compressed), json_key)
    elif suffix == ".parquet" and not compressed:
        yield from _parquet_rows(path)
    elif suffix == ".csv":
        yield from _csv_rows(path, compressed)
    else:
        raise DataError(
            f"{path}: unsupported file type {''.join(path.suffixes[-2:])!r}; use one of {', '.join(SUFFIXES)}"
        )


def read_json(path: Path) -> Any:
    """A whole JSON file (a leading byte-order mark is dropped); ``DataError`` naming the file and line when
    it is not UTF-8 or not valid JSON."""
    try:
        return json.loads(_read_text(path, path.name.lower().endswith(".gz")))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from err


def read_json_list(path: Path, items: str) -> list[Any]:
    """A whole JSON file that must hold a list (of ``items``, named in the error); ``DataError`` naming the
    file and line when it is not valid JSON or not a list."""
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {items}, got {type(data).__name__}")
    return data


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, line without its line ending)`` of a plain-text file (``.gz`` too); a byte-order mark
    is dropped, CRLF and LF both end a line, and a line that is not UTF-8 raises ``DataError`` naming it."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data file not found: {path}; check `path:` in the data config")
    with _open_text(path, path.name.lower().endswith(".gz"), newline=None) as handle:
        for line_no, line in _lines(handle, path):
            yield line_no, line.rstrip("\n")


def _open_text(path: Path, compressed: bool, newline: str | None = ""):
    # utf-8-sig drops a leading byte-order mark (and reads a file without one unchanged).
    if compressed:
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline=newline)
    return path.open(encoding="utf-8-sig", newline=newline)


def _read_text(path: Path, compressed: bool) -> str:
    try:
        with _open_text(path, compressed) as handle:
            return handle.read()
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}: not UTF-8 text ({err.reason} at byte {err.start} of a read block); re-save "
            f"the file as UTF-8"
        ) from None
    except _BROKEN_GZIP as err:
        raise DataError(
            f"{path}: corrupt or truncated gzip file ({err}); download or compress it again"
        ) from None


def _first_non_utf8_line(path: Path) -> int | None:
    """1-based number of the first line of ``path`` (decompressed if ``.gz``) that is not UTF-8."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return line_no
    return None


def _lines(handle: Iterable[str], path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, line)``; a line that is not UTF-8 or a broken ``.gz`` raises ``DataError`` naming
    the file and line."""
    line_no, lines = 0, iter(handle)
    while True:
        try:
            line = next(lines)
        except StopIteration:
            return
        except UnicodeDecodeError as err:
            # Text is decoded in blocks: the failing line is found again from the raw bytes.
            bad = _first_non_utf8_line(path) or line_no + 1
            raise DataError(
                f"{path}:{bad}: not UTF-8 text ({err.reason}); re-save the file as UTF-8"
            ) from None
        except _BROKEN_GZIP as err:
            raise DataError(
                f"{path}:{line_no + 1}: corrupt or truncated gzip file ({err}); download or compress it again"
            ) from None
        line_no += 1
        yield line_no, line


def _jsonl_rows(path: Path, compressed: bool, skip_invalid: bool = False) -> Iterator[Row]:
    loads, prefix = json.loads, f"{path}:"
    with _open_text(path, compressed) as handle:
        for line_no, line in _lines(handle, path):
            if line.isspace() or not line:
                continue
            try:
                row = loads(line)
            except json.JSONDecodeError as err:
                message = f"{prefix}{line_no}: not valid JSON ({err.msg} at column {err.colno})"
                if skip_invalid:
                    yield prefix + str(line_no), InvalidRow(message)
                    continue
                raise DataError(message) from err
            if type(row) is not dict:
                raise DataError(
                    f"{prefix}{line_no}: expected a JSON object per line, got {type(row).__name__}"
                )
            yield prefix + str(line_no), row


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WHITESPACE:
        pos += 1
    return pos


def _decode(text: str, pos: int, path: Path) -> tuple[Any, int]:
    try:
        return _DECODER.raw_decode(text, pos)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from err


def _expect(text: str, pos: int, chars: str, path: Path) -> int:
    pos = _skip_ws(text, pos)
    if pos >= len(text) or text[pos] not in chars:
        line = text.count("\n", 0, pos) + 1
        found = repr(text[pos]) if pos < len(text) else "end of file"
        raise DataError(f"{path}:{line}: not valid JSON (expected one of {chars!r}, found {found})")
    return pos


def _list_start(text: str, path: Path, json_key: str | None) -> int:
    """Offset of the ``[`` of the row list: the top-level list, or the list under ``json_key`` of an
    object."""
    pos = _expect(text, 0, "[{", path)
    if text[pos] == "[":
        return pos
    lists, pos = {}, pos + 1
    while True:
        pos = _expect(text, pos, '"}', path)
        if text[pos] == "}":
            break
        key, pos = _decode(text, pos, path)
        pos = _expect(text, pos, ":", path) + 1
        start = _skip_ws(text, pos)
        _, pos = _decode(text, start, path)
        if text[start] == "[":
            lists[key] = start
        pos = _expect(text, pos, ",}", path)
        if text[pos] == "}":
            break
        pos += 1
    if json_key is None:
        if len(lists) != 1:
            raise DataError(
                f"{path}: a JSON object with list fields {sorted(lists)}; set json_key to the "
                f"one holding the rows"
            )
        json_key = next(iter(lists))
    if json_key not in lists:
        raise DataError(f"{path}: no list under key {json_key!r} in the JSON object (lists: {sorted(lists)})")
    return lists[json_key]


def _json_rows(path: Path, text: str, json_key: str | None) -> Iterator[Row]:
    """The objects of a JSON list, each with the line it starts on (the file is decoded once, in C)."""
    pos, line, counted, index = _list_start(text, path, json_key) + 1, 1, 0, 0
    pos = _skip_ws(text, pos)
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        pos = _skip_ws(text, pos)
        line += text.count("\n", counted, pos)
        counted = pos
        row, pos = _decode(text, pos, path)
        where = f"{path}:{line} (record {index})"
        if type(row) is not dict:
            raise DataError(f"{where}: expected an object, got {type(row).__name__}")
        yield where, row
        index += 1
        pos = _expect(text, pos, ",]", path)
        if text[pos] == "]":
            return
        pos += 1


def _csv_rows(path: Path, compressed: bool) -> Iterator[Row]:
    with _open_text(path, compressed) as handle:
        reader = csv.DictReader(line for _, line in _lines(handle, path))
        start = 2
        for row in reader:
            yield f"{path}:{start}", row
            start = reader.line_num + 1


def _parquet_rows(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:
        raise DataError(
            f"{path}: not a readable parquet file ({str(err).splitlines()[0][:200]}); download or "
            f"write it again"
        ) from None
    for index, row in enumerate(table.to_pylist()):
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
        raise DataError(
            f"hub dataset {name!r} (config {config!r}, split {split!r}) could not be loaded: "
            f"{str(err).splitlines()[0][:200]}; download the official file and set `path:`"
        ) from err
    for index, row in enumerate(dataset):
        yield f"{name}[{split}] row {index}", row


ROW_KEY = "__row__"
"""Key under which :func:`numbered` stores a row's position: ``"<split>-<index>"`` (``all`` for one file)."""


def numbered(source: dict[str, Iterator[Row]] | Iterator[Row]) -> dict[str, Iterator[Row]] | Iterator[Row]:
    """The same rows, each with its 0-based position in its split (or single file) under ``ROW_KEY``; for
    datasets whose rows carry no id (ids are then stable for a given file or hub split)."""

    def tag(name: str, rows: Iterator[Row]) -> Iterator[Row]:
        for index, (where, row) in enumerate(rows):
            yield where, {**row, ROW_KEY: f"{name}-{index}"}

    if isinstance(source, dict):
        return {split: tag(split, rows) for split, rows in source.items()}
    return tag("all", source)
