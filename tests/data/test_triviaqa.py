"""TriviaQA's native schemas (hub rc.nocontext and the official JSON files) map to records."""

import json
from pathlib import Path

from metalight.data.sources.triviaqa import TriviaQADataModule

ROWS = Path(__file__).parent / "fixtures" / "triviaqa_native_rows.jsonl"

HUB_ROW = {
    "question": "Which Lloyd Webber musical premiered in the US on 10th December 1993?",
    "question_id": "tc_33",
    "question_source": "http://www.triviacountry.com/",
    "entity_pages": {"doc_source": [], "filename": [], "title": [], "wiki_context": []},
    "search_results": {
        "description": [],
        "filename": [],
        "rank": [],
        "title": [],
        "url": [],
        "search_context": [],
    },
    "answer": {
        "aliases": ["Sunset Blvd", "Sunset Boulevard", "West Sunset Boulevard"],
        "normalized_aliases": ["sunset blvd", "sunset boulevard", "west sunset boulevard"],
        "matched_wiki_entity_name": "",
        "normalized_matched_wiki_entity_name": "",
        "normalized_value": "sunset boulevard",
        "type": "WikipediaEntity",
        "value": "Sunset Boulevard",
    },
}

OFFICIAL = {
    "Data": [
        {
            "Question": "Who was the man behind The Chipmunks?",
            "QuestionId": "tc_2",
            "QuestionSource": "http://www.triviacountry.com/",
            "Answer": {
                "Aliases": ["David Seville"],
                "NormalizedAliases": ["david seville"],
                "NormalizedValue": "david seville",
                "Type": "WikipediaEntity",
                "Value": "David Seville",
            },
        }
    ],
    "Domain": "Web",
    "Version": 1.0,
}


def test_hub_schema_row_maps_aliases_with_value_first(tmp_path):
    path = tmp_path / "validation.jsonl"
    path.write_text(json.dumps(HUB_ROW) + "\n")
    module = TriviaQADataModule(path={"val": str(path)})
    record = module.records("val")[0]
    assert record.id == "tc_33"
    assert record.answers == ["Sunset Boulevard", "Sunset Blvd", "West Sunset Boulevard"]


def test_normalized_aliases_option(tmp_path):
    path = tmp_path / "validation.jsonl"
    path.write_text(json.dumps(HUB_ROW) + "\n")
    record = TriviaQADataModule(path={"val": str(path)}, answers_field="normalized_aliases").records("val")[0]
    assert "sunset blvd" in record.answers


def test_official_json_file_reads_the_data_list(tmp_path):
    path = tmp_path / "verified-web-dev.json"
    path.write_text(json.dumps(OFFICIAL))
    record = TriviaQADataModule(path={"test": str(path)}).records("test")[0]
    assert (record.id, record.answers) == ("tc_2", ["David Seville"])


def test_fixture_rows_in_the_hub_schema():
    records = TriviaQADataModule(path={"train": str(ROWS)}).records("train")
    assert [r.id for r in records] == ["tc_33", "tc_2"]
    assert records[1].answers == ["David Seville"] and records[1].meta["value"] == "David Seville"
