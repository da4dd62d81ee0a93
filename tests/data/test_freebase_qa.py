"""FreebaseQA: the official JSON object (and the column-wise hub form) map to records."""

from pathlib import Path

from metalight.data.sources.freebase_qa import FreebaseQADataModule

ROWS = Path(__file__).parent / "fixtures" / "freebase_qa_native_rows.json"


def test_official_file_unions_answer_names_over_parses():
    records = FreebaseQADataModule(path={"test": str(ROWS)}).records("test")
    assert [r.id for r in records] == ["FreebaseQA-eval-0", "FreebaseQA-eval-1"]
    assert records[0].question == "Who wrote the novel Moby-Dick, first published in 1851?"
    assert records[0].answers == ["herman melville", "melville"]
    assert records[1].answers == ["mars"]


def test_column_wise_parses_as_datasets_returns_them():
    module = FreebaseQADataModule(path="unused.json")
    row = {
        "Question-ID": "q",
        "RawQuestion": "Which planet?",
        "ProcessedQuestion": "which planet",
        "Parses": {
            "Parse-Id": ["p0", "p1"],
            "Answers": [
                {"AnswersMid": ["m1"], "AnswersName": [["mars", "red planet"]]},
                {"AnswersMid": ["m2"], "AnswersName": [["mars"]]},
            ],
        },
    }
    assert module.parse_row(row, "hub row 0").answers == ["mars", "red planet"]
