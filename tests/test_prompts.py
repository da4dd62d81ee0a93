"""Prompt templates follow ESMA's wording and language variants."""

import pytest

from metalight.prompts import direct_prompt, idk_prompt, meta_prompt, qa_templates


def test_english_templates_match_esma_wording():
    assert direct_prompt("Q?") == "Answer the following question with keywords.\nQuestion: Q?\n"
    assert meta_prompt("Q?").startswith("Do you know the answer to the following question?")
    assert 'just return "Yes"' in meta_prompt("Q?") and 'just return "No"' in meta_prompt("Q?")
    assert meta_prompt("Q?").endswith("Question: Q?\n")
    assert 'just return "I don\'t know"' in idk_prompt("Q?")


@pytest.mark.parametrize(
    ("language", "label", "yes"), [("ko", "질문:", "예"), ("zh_cn", "问题:", "是"), ("es", "Pregunta:", "Sí")]
)
def test_language_variants(language, label, yes):
    assert label in direct_prompt("x", language) and label in meta_prompt("x", language)
    assert qa_templates(language).yes_word == yes


def test_unknown_language_and_idk_outside_english_are_errors():
    with pytest.raises(ValueError, match="no QA prompt templates"):
        direct_prompt("x", "fr")
    with pytest.raises(ValueError, match="only in English"):
        idk_prompt("x", "ko")
