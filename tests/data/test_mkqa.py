"""MKQA: the language picks the question and its answers; unanswerable / long answers are left out."""

from pathlib import Path

import pytest

from metalight.data.sources.mkqa import MKQADataModule
from metalight.errors import ConfigError

ROWS = Path(__file__).parent / "fixtures" / "mkqa_native_rows.jsonl"


def records(language):
    module = MKQADataModule(path={"val": str(ROWS)}, language=language)
    return module, module.records("val")


def test_english_text_and_aliases_with_the_hub_class_label():
    module, rows = records("en")
    assert [r.answers for r in rows] == [["Dave Edmunds", "David William Edmunds"], ["32", "thirty-two"]]
    assert rows[1].id == "7089015503030534144" and rows[1].meta["answer_type"] == "number"
    assert module.dropped == 1  # the long_answer question has no short answer


def test_other_languages_use_their_queries_and_fall_back_to_the_english_query():
    _, korean = records("ko")
    assert korean[0].question.endswith("누가 불러") and korean[0].answers == ["데이브 에드먼즈"]
    assert korean[0].meta["language"] == "ko"
    _, spanish = records("es")
    assert spanish[1].question == "how many teeth does an adult human have"  # empty Spanish query
    assert spanish[1].answers == ["32", "treinta y dos"]


def test_unknown_language_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown language 'xx'.*zh_cn"):
        MKQADataModule(path=str(ROWS), language="xx")
