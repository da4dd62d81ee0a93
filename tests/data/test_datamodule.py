"""QADataModule base: reading, validation errors naming file:line, splits, the eval sampler."""

import json

import pytest

from metalight.data.datamodule import EvalDistributedSampler, RecordDataset, split_records
from metalight.data.records import QARecord
from metalight.data.sources.triviaqa import TriviaQADataModule
from metalight.errors import ConfigError, DataError


def trivia_row(i, aliases=("Paris",), question=None):
    return {
        "question": question if question is not None else f"Question {i}?",
        "question_id": f"q{i}",
        "question_source": "http://example",
        "entity_pages": {},
        "search_results": {},
        "answer": {
            "aliases": list(aliases),
            "normalized_aliases": [a.lower() for a in aliases],
            "matched_wiki_entity_name": "",
            "normalized_matched_wiki_entity_name": "",
            "normalized_value": aliases[0].lower() if aliases else "",
            "type": "WikipediaEntity",
            "value": aliases[0] if aliases else "",
        },
    }


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_jsonl_rows_map_to_records_and_split_deterministically(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [trivia_row(i) for i in range(50)])
    first = TriviaQADataModule(path=str(path), seed=3)
    first.setup()
    again = TriviaQADataModule(path=str(path), seed=3)
    again.setup()
    assert {k: [r.id for r in v] for k, v in first.splits.items()} == {
        k: [r.id for r in v] for k, v in again.splits.items()
    }
    assert [len(first.records(s)) for s in ("train", "val", "test")] == [40, 5, 5]
    assert first.records("val")[0].answers == ["Paris"]


def test_missing_file_names_the_path(tmp_path):
    module = TriviaQADataModule(path=str(tmp_path / "nope.jsonl"))
    with pytest.raises(DataError, match=r"data file not found: .*nope\.jsonl"):
        module.setup()


def test_invalid_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(trivia_row(0)) + "\n{not json\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        TriviaQADataModule(path=str(path)).setup()


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (trivia_row(1, aliases=()), "empty answer list"),
        (trivia_row(1, question=""), "empty or non-text question"),
        ({"question": "Q?", "question_id": "x"}, "missing field `answer`"),
        ({**trivia_row(1), "answer": {"aliases": "Paris", "value": "Paris"}}, "must be a list"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, row, message):
    path = write_jsonl(tmp_path / "rows.jsonl", [trivia_row(0), row])
    with pytest.raises(DataError, match=rf"rows\.jsonl:2: .*{message}"):
        TriviaQADataModule(path=str(path)).setup()


def test_non_strict_skips_malformed_rows_and_reports_them(tmp_path, caplog):
    path = write_jsonl(tmp_path / "rows.jsonl", [trivia_row(0), trivia_row(1, aliases=()), trivia_row(2)])
    module = TriviaQADataModule(path=str(path), strict=False, val_fraction=0, test_fraction=0)
    module.setup()
    assert [r.id for r in module.records("train")] == ["q0", "q2"]
    assert len(module.skipped) == 1 and "rows.jsonl:2" in module.skipped[0]
    assert "skipped 1 malformed rows" in caplog.text


def test_max_samples_caps_each_split(tmp_path):
    path = write_jsonl(tmp_path / "t.jsonl", [trivia_row(i) for i in range(100)])
    module = TriviaQADataModule(path=str(path), max_samples={"val": 3}, val_fraction=0.2)
    module.setup()
    assert len(module.records("val")) == 3 and len(module.records("train")) == 70


def test_max_samples_from_start_keeps_the_first_rows_as_know_thyself(tmp_path):
    """Know-thyself loads the first N rows of a split; the default cap is a seeded draw."""
    files = {
        split: str(write_jsonl(tmp_path / f"{split}.jsonl", [trivia_row(i) for i in range(30)]))
        for split in ("train", "val")
    }
    first = TriviaQADataModule(path=files, max_samples={"train": 20, "val": 10}, max_samples_from="start")
    assert [r.id for r in first.records("val")] == [f"q{i}" for i in range(10)]
    assert [r.id for r in first.records("train")] == [f"q{i}" for i in range(20)]
    assert first.split_summary("val")["max_samples_from"] == "start"
    drawn = TriviaQADataModule(path=files, max_samples={"val": 10})
    assert [r.id for r in drawn.records("val")] != [f"q{i}" for i in range(10)]
    assert drawn.split_summary("val")["max_samples_from"] == "shuffle"


def test_split_keeps_groups_together():
    records = [QARecord(str(i), "q", ["a"], meta={"group": i // 4}) for i in range(40)]
    splits = split_records(records, 0.2, 0.2, seed=1, group_of=lambda r: r.meta["group"])
    seen = {split: {r.meta["group"] for r in rs} for split, rs in splits.items()}
    assert not (seen["train"] & seen["val"]) and not (seen["val"] & seen["test"])
    assert sum(len(v) for v in splits.values()) == 40


def test_bad_fractions_are_config_errors():
    with pytest.raises(ConfigError, match="val_fraction"):
        TriviaQADataModule(path="x.jsonl", val_fraction=0.6, test_fraction=0.5)


def test_eval_sampler_marks_padding_rows_so_every_record_counts_once():
    dataset = RecordDataset(list(range(5)))
    seen = []
    for rank in range(2):
        keys = list(EvalDistributedSampler(dataset, num_replicas=2, rank=rank))
        assert len(keys) == 3  # equal work per rank
        seen += [dataset[k][0] for k in keys if not dataset[k][1]]
    assert sorted(seen) == [0, 1, 2, 3, 4]
