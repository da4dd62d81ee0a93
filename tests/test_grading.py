"""Grading and yes/no parsing, as table tests."""

import pytest

from metalight.grading import (
    exact_match,
    is_correct,
    normalize_answer,
    parse_meta_answer,
    parse_yes_no_strict,
)

STRICT_CASES = [
    ("Yes", "yes"),
    ("yes", "yes"),
    ("YES", "yes"),
    ("Yes.", "yes"),
    ("  Yes", "yes"),
    ("\nYes\n", "yes"),
    ("Yes, I do.", "yes"),
    ("Yes, I know the answer.", "yes"),
    ("**Yes**", "yes"),
    ('"Yes"', "yes"),
    ("Yeah", "yes"),
    ("Yep!", "yes"),
    ("Sure.", "yes"),
    ("Absolutely", "yes"),
    ("Of course", "yes"),
    ("I do.", "yes"),
    ("I know the answer.", "yes"),
    ("I'm sure.", "yes"),
    ("I am certain", "yes"),
    ("Answer: Yes", "yes"),
    ("The answer is yes.", "yes"),
    ("- Yes", "yes"),
    ("Yes, Paris.", "yes"),
    ("No", "no"),
    ("no", "no"),
    ("No.", "no"),
    ("  No", "no"),
    ("NO!", "no"),
    ("No, I don't.", "no"),
    ("Nope", "no"),
    ("I don't know", "no"),
    ("I don’t know.", "no"),
    ("I do not know the answer", "no"),
    ("I'm not sure.", "no"),
    ("Not sure", "no"),
    ("I am not certain about this", "no"),
    ("Unsure", "no"),
    ("I cannot answer that.", "no"),
    ("I can't say.", "no"),
    ("I have no idea", "no"),
    ("Sorry, I don't know.", "no"),
    ("Answer: No", "no"),
    ("**No**", "no"),
    ("The answer is no.", "no"),
    ("", None),
    ("   ", None),
    ("Paris", None),
    ("The capital of France is Paris.", None),
    ("A:", None),
    ("Options:\nA. United States", None),
    ("yesterday it rained", None),
    ("Maybe", None),
]


@pytest.mark.parametrize(("text", "expected"), STRICT_CASES)
def test_strict_parser_reads_each_phrasing(text, expected):
    assert parse_yes_no_strict(text) == expected


def test_strict_parser_covers_at_least_thirty_phrasings():
    assert len(STRICT_CASES) >= 30


@pytest.mark.parametrize(
    ("text", "said_yes"),
    [
        ("Yes", True),
        ("yes, I do", True),
        ("I said yes", True),
        ("yesterday", True),  # ESMA's substring rule
        ("No", False),
        ("Paris", False),
        ("", False),
        ("I don't know", False),
    ],
)
def test_esma_rule_is_substring_yes(text, said_yes):
    assert parse_meta_answer(text, "esma").said_yes is said_yes


def test_esma_rule_reports_strict_parse_for_unparsed_rate():
    assert parse_meta_answer("Paris", "esma").parsed is False
    assert parse_meta_answer("No.", "esma").parsed is True


def test_strict_rule_scores_unparsed_as_no_and_counts_it():
    decision = parse_meta_answer("The capital is Paris", "strict")
    assert decision.said_yes is False and decision.parsed is False


@pytest.mark.parametrize(
    ("language", "text", "esma_yes", "strict"),
    [
        ("ko", "예", True, "yes"),
        ("ko", "아니요", False, "no"),
        ("zh", "是", True, "yes"),
        (
            "zh",
            "不是",
            True,
            "no",
        ),  # ESMA's rule counts 不是 as yes (substring 是); the strict parser does not
        ("zh", "否", False, "no"),
        ("es", "Sí", True, "yes"),
        ("es", "si", False, "yes"),
        ("es", "No", False, "no"),
    ],
)
def test_language_variants(language, text, esma_yes, strict):
    assert parse_meta_answer(text, "esma", language).said_yes is esma_yes
    assert parse_yes_no_strict(text, language) == strict


@pytest.mark.parametrize(
    ("answer", "aliases", "esma", "normalized"),
    [
        ("Paris", ["Paris"], True, True),
        ("The capital is paris.", ["Paris"], True, True),
        ("PARIS", ["paris"], True, True),
        ("London", ["Paris"], False, False),
        ("James Cameron directed it", ["James Cameron", "Cameron"], True, True),
        ("the beatles", ["The Beatles"], True, True),
        ("Beatles", ["The Beatles"], False, True),  # articles dropped only when normalising
        ("U.S.A.", ["USA"], False, True),  # punctuation dropped only when normalising
        ("anything", ["", "Paris"], False, False),  # empty aliases never match
        ("", ["Paris"], False, False),
        ("20,310 feet", ["20310", "20,310"], True, True),
        ("15 apples", ["5"], True, False),  # whole words only when normalising
        ("Parisian", ["Paris"], True, False),
    ],
)
def test_correctness_modes(answer, aliases, esma, normalized):
    assert is_correct(answer, aliases, "esma") is esma
    assert is_correct(answer, aliases, "normalized") is normalized


def test_unknown_grading_mode_is_an_error():
    with pytest.raises(ValueError, match="grading mode"):
        is_correct("a", ["a"], "fuzzy")


def test_exact_match_needs_normalised_equality():
    assert exact_match("The Paris.", ["paris"])
    assert not exact_match("Paris, France", ["Paris"])
    assert not exact_match("", [""])


def test_normalize_answer_is_squad_normalisation():
    assert normalize_answer("  The  Quick, brown FOX!  ") == "quick brown fox"


def test_know_thyself_grading_is_two_way_containment_with_empty_answers_wrong():
    assert is_correct("It is Paris, France.", ["paris"], "know_thyself")
    assert is_correct("Paris", ["Paris, France"], "know_thyself")  # the answer inside an alias counts too
    assert not is_correct("Lyon", ["Paris"], "know_thyself")
    assert not is_correct("", ["Paris"], "know_thyself") and not is_correct("?!", ["Paris"], "know_thyself")


@pytest.mark.parametrize(
    ("answer", "gold", "expected"),
    [
        ("7 + 5 = 12", "12", True),
        ("316 + 0 = 317", "316", False),  # echoes an operand, ends on a wrong total
        ("The answer to this question is 316.", "316", True),
        ("10 is the answer to 4 times 10.", "40", False),
        ("6 * 3 = 18\n\nThe answer is 6 *", "18", True),  # the value after '=' counts, not a trailing operand
        ("1,000", "1000", True),
        ("= 5440001", "5440000", False),  # integers compare exactly
        ("The first letter of the word 'dragon' is 'D'.", "d", True),
        ("The last letter of the word 'cub' is 'y'.", "b", False),
        ("I do not know", "i", False),  # "I" the pronoun is not an answer letter
        ("The word is paris", "Paris", True),  # other golds: normalized containment
        ("no number here", "12", False),
    ],
)
def test_final_grading(answer, gold, expected):
    assert is_correct(answer, [gold], "final") is expected
