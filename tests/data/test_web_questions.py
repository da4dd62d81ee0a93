"""WebQuestions: the hub schema and the official targetValue files map to the same records."""

from pathlib import Path

import pytest

from metalight.data.sources.web_questions import WebQuestionsDataModule, target_values
from metalight.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"


def test_hub_rows_map_to_records_and_keep_the_url():
    path = FIXTURES / "web_questions_native_rows.jsonl"
    records = WebQuestionsDataModule(path={"test": str(path)}).records("test")
    assert records[0].question == "what does jamaican people speak?"
    assert records[0].answers == ["Jamaican Creole English Language", "Jamaican English"]
    assert records[0].meta["url"] == "http://www.freebase.com/view/en/jamaica"
    assert len({r.id for r in records}) == 3  # the shared url is not the id


def test_official_file_parses_target_values():
    path = FIXTURES / "web_questions_official_native_rows.json"
    records = WebQuestionsDataModule(path={"test": str(path)}).records("test")
    assert records[0].answers == ["Jamaican Creole English Language", "Jamaican English"]
    assert (records[1].question, records[1].answers) == ("what is the capital of spain?", ["Madrid"])


def test_questions_about_one_entity_stay_in_one_split():
    module = WebQuestionsDataModule(
        path=str(FIXTURES / "web_questions_native_rows.jsonl"), val_fraction=0.4, test_fraction=0.0, seed=5
    )
    by_url = {}
    for split in ("train", "val", "test"):
        for record in module.records(split):
            by_url.setdefault(record.meta["url"], set()).add(split)
    assert all(len(splits) == 1 for splits in by_url.values())


def test_target_value_needs_a_list_expression():
    assert target_values('(list (description "A \\"quoted\\" name") (description 1990))', "x") == [
        'A "quoted" name',
        "1990",
    ]
    with pytest.raises(DataError, match="targetValue"):
        target_values("Madrid", "f.json:3")
