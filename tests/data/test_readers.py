"""Readers: every file type yields rows with a `where` naming file and line."""

import gzip
import json

import pytest

from metalight.data.readers import numbered, read_rows, text_lines
from metalight.errors import DataError


def test_json_list_rows_name_the_line_each_object_starts_on(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[\n  {"a": 1},\n  {\n    "a": "two\\nlines"\n  },\n\n  {"a": [1, 2]}\n]\n')
    rows = list(read_rows(path))
    assert [w.split("/")[-1] for w, _ in rows] == [
        "rows.json:2 (record 0)",
        "rows.json:3 (record 1)",
        "rows.json:7 (record 2)",
    ]
    assert [r["a"] for _, r in rows] == [1, "two\nlines", [1, 2]]


def test_json_object_finds_its_only_list_or_the_named_one(tmp_path):
    path = tmp_path / "obj.json"
    path.write_text('{"Version": 1.0, "Meta": {"x": [1]},\n "Data": [\n {"q": 1},\n {"q": 2}]}')
    wheres = [w.split("/")[-1] for w, _ in read_rows(path)]
    assert wheres == ["obj.json:3 (record 0)", "obj.json:4 (record 1)"]
    two = tmp_path / "two.json"
    two.write_text('{"A": [{"q": 1}], "B": [{"q": 2}]}')
    with pytest.raises(DataError, match=r"list fields \['A', 'B'\]; set json_key"):
        list(read_rows(two))
    assert [r["q"] for _, r in read_rows(two, json_key="B")] == [2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[{"a": 1},\n{"a": }]', r"bad\.json:2: not valid JSON"),
        ('[{"a": 1},\n 3]', r"bad\.json:2 \(record 1\): expected an object, got int"),
        ('[{"a": 1}\n {"a": 2}]', r"bad\.json:2: not valid JSON \(expected one of ',\]'"),
        ('"just a string"', r"bad\.json:1: not valid JSON"),
    ],
)
def test_malformed_json_names_the_line(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        list(read_rows(path))


def test_gzipped_jsonl_and_csv_lines(tmp_path):
    path = tmp_path / "rows.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(json.dumps({"q": "é"}) + "\n\n" + json.dumps({"q": "b"}) + "\n")
    assert [(w.split("/")[-1], r["q"]) for w, r in read_rows(path)] == [
        ("rows.jsonl.gz:1", "é"),
        ("rows.jsonl.gz:3", "b"),
    ]
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text('question,answer\n"two\nlines",x\nplain,y\n')
    assert [w.split("/")[-1] for w, _ in read_rows(csv_path)] == ["rows.csv:2", "rows.csv:4"]


def test_unsupported_suffix_names_the_supported_ones(tmp_path):
    path = tmp_path / "rows.txt"
    path.write_text("x")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'; use one of \.jsonl"):
        list(read_rows(path))


def test_numbered_tags_each_split_from_zero():
    source = {"train": iter([("f:1", {"q": 1}), ("f:2", {"q": 2})]), "val": iter([("g:1", {"q": 3})])}
    tagged = numbered(source)
    assert [r["__row__"] for _, r in tagged["train"]] == ["train-0", "train-1"]
    assert [r["__row__"] for _, r in tagged["val"]] == ["val-0"]


BOM = "\ufeff"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("rows.csv", 'statement,label\r\n"Sukhumi is in Abkhazia, Georgia.",1\r\nplain,0\r\n'),
        (
            "rows.jsonl",
            (
                '{"statement": "Sukhumi is in Abkhazia, Georgia.", "label": 1}\r\n\r\n'
                '{"statement": "plain", "label": 0}\r\n'
            ),
        ),
        (
            "rows.json",
            (
                '[\r\n {"statement": "Sukhumi is in Abkhazia, Georgia.", "label": 1},\r\n'
                ' {"statement": "plain", "label": 0}\r\n]\r\n'
            ),
        ),
        ("rows.csv.gz", 'statement,label\r\n"Sukhumi is in Abkhazia, Georgia.",1\r\nplain,0\r\n'),
        (
            "rows.jsonl.gz",
            (
                '{"statement": "Sukhumi is in Abkhazia, Georgia.", "label": 1}\r\n'
                '{"statement": "plain", "label": 0}\r\n'
            ),
        ),
    ],
)
def test_byte_order_mark_and_crlf_read_like_plain_utf8(tmp_path, name, text):
    """Upstream neurofeedback's generated_true_false.csv starts with a BOM; Windows tools write CRLF."""
    path = tmp_path / name
    data = (BOM + text).encode("utf-8")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    rows = [row for _, row in read_rows(path)]
    assert [set(r) for r in rows] == [{"statement", "label"}] * 2
    assert [r["statement"] for r in rows] == ["Sukhumi is in Abkhazia, Georgia.", "plain"]
    assert [str(r["label"]) for r in rows] == ["1", "0"]


def test_text_lines_drop_the_mark_and_line_endings(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes((BOM + "mountain \r\nsea\n\r\nhistory").encode("utf-8"))
    assert list(text_lines(path)) == [(1, "mountain "), (2, "sea"), (3, ""), (4, "history")]
    (tmp_path / "latin1.txt").write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(DataError, match=r"latin1\.txt:2: not UTF-8"):
        list(text_lines(tmp_path / "latin1.txt"))
