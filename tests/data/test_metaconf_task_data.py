"""MetaConf's stage-2 task files: maths (boxed answers) and long-form QA, read in their native schemas."""

import json
from pathlib import Path

import pytest

from metalight.data.sources.metaconf_tasks import MetaConfLongFormDataModule, MetaConfMathDataModule
from metalight.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"


def test_math_rows_keep_the_question_and_the_last_boxed_answer():
    records = MetaConfMathDataModule(path={"test": str(FIXTURES / "metaconf_math_native_rows.json")}).records(
        "test"
    )
    assert [r.answers for r in records] == [["72"], ["5"], ["2\\sqrt{2}"], ["\\frac{3}{2}"]]
    assert records[0].question.startswith("Natalia sold clips") and records[0].id == "math-test-0"
    assert (
        records[2].meta["solution"].endswith("\\boxed{2\\sqrt{2}}") and records[2].meta["task_type"] == "math"
    )


def test_math_row_without_boxed_answer_names_file_and_record(tmp_path):
    path = tmp_path / "math.json"
    path.write_text(
        json.dumps(
            [
                {
                    "prompt": [{"role": "user", "content": "1+1?", "task_type": "math"}],
                    "answer": "\\boxed{2}",
                },
                {
                    "prompt": [{"role": "user", "content": "2+2?", "task_type": "math"}],
                    "answer": "Step 1: it is 4.",
                },
            ],
            indent=1,
        )
    )
    with pytest.raises(
        DataError, match=r"math\.json:\d+ \(record 1\): field `answer` has no non-empty \\boxed"
    ):
        MetaConfMathDataModule(path={"test": str(path)}).records("test")
    assert len(MetaConfMathDataModule(path={"test": str(path)}, strict=False).records("test")) == 1


def test_math_row_without_user_message_is_an_error(tmp_path):
    path = tmp_path / "math.jsonl"
    path.write_text(
        json.dumps({"prompt": [{"role": "system", "content": "x"}], "answer": "\\boxed{1}"}) + "\n"
    )
    with pytest.raises(DataError, match=r"math\.jsonl:1: `prompt` has no message with role user"):
        MetaConfMathDataModule(path={"test": str(path)}).records("test")


def test_long_form_items_become_questions_without_aliases():
    module = MetaConfLongFormDataModule(path={"test": str(FIXTURES / "metaconf_long_form_native_rows.json")})
    records = module.records("test")
    assert [r.meta["title"] for r in records] == ["Marie Curie", "Eiffel Tower", "Ada Lovelace"]
    assert records[1].question == "In a paragraph, can you tell me about the Eiffel Tower?"
    assert all(r.answers == [] and r.meta["task_type"] == "long_fact" for r in records)


def test_long_form_single_file_is_split_without_losing_rows():
    module = MetaConfLongFormDataModule(
        path=str(FIXTURES / "metaconf_long_form_native_rows.json"), val_fraction=0.34, test_fraction=0.0
    )
    assert sum(len(module.records(s)) for s in ("train", "val", "test")) == 3


@pytest.mark.parametrize(
    "content, message",
    [
        (
            {"messages": [["not a message"]]},
            r"long\.json \(messages\[0\]\): `messages` has no message with role user",
        ),
        ({"messages": [{"role": "user"}]}, r"long\.json \(messages\[0\]\): a `messages` item must be a list"),
        ({"rows": []}, r"long\.json: expected an object with a `messages` list"),
    ],
)
def test_malformed_long_form_file_names_file_and_item(tmp_path, content, message):
    path = tmp_path / "long.json"
    path.write_text(json.dumps(content))
    with pytest.raises(DataError, match=message):
        MetaConfLongFormDataModule(path={"test": str(path)}).records("test")


def test_long_form_invalid_json_names_the_line(tmp_path):
    path = tmp_path / "long.json"
    path.write_text('{"messages": [\n[{"role": "user", "content": "x"}],\n oops]}')
    with pytest.raises(DataError, match=r"long\.json:3: not valid JSON"):
        MetaConfLongFormDataModule(path={"test": str(path)}).records("test")
