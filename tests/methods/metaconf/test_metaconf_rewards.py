"""MetaConf parsing (plain and tagged, malformed replies) and rewards, computed by hand."""

import pytest

from metalight.data.records import QARecord
from metalight.methods.metaconf.rewards import (
    MetaConfResponse,
    MetaConfScorer,
    format_response,
    parse_response,
)

RECORD = QARecord("1", "What is the capital of France?", ["Paris"])


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "Answer: Paris\nSelf-reflection: I know European capitals well.\nConfidence: 9",
            ("Paris", "I know European capitals well.", 9.0),
        ),
        (
            "**Answer:** Paris. **Self-reflection:** Fairly sure. **Confidence:** 7/10.",
            ("Paris.", "Fairly sure.", 7.0),
        ),
        ("Answer: Paris\nSelf reflection: sure\nConfidence: 85%", ("Paris", "sure", 8.5)),
        (
            "Answer: Lyon\nSelf-reflection: my confidence: low\nConfidence: 3 (low)",
            ("Lyon", "my confidence: low", 3.0),
        ),
        ("answer: Paris\nreflection: ok\nconfidence: 6.5", ("Paris", "ok", 6.5)),
        ("Answer: Paris\nConfidence: 12", ("Paris", None, None)),  # no reflection; 12 is out of range
        ("Answer: Paris\nSelf-reflection: sure\nConfidence: high", ("Paris", "sure", None)),
        ("Answer: Paris\nSelf-reflection:\nConfidence: 4", ("Paris", None, 4.0)),
        ("Paris is the capital of France.", (None, None, None)),
        ("", (None, None, None)),
    ],
)
def test_plain_parser(text, expected):
    assert parse_response(text) == MetaConfResponse(*expected)


def test_tagged_parser_needs_closed_tags():
    good = "<answer>Paris</answer>\n<reflection>I know this.</reflection>\n<confidence>8</confidence>"
    assert parse_response(good, "tagged") == MetaConfResponse("Paris", "I know this.", 8.0)
    assert parse_response(good.replace("</reflection>", ""), "tagged") == MetaConfResponse("Paris", None, 8.0)
    assert parse_response("Answer: Paris\nSelf-reflection: x\nConfidence: 3", "tagged").format_ok is False


@pytest.mark.parametrize("response_format", ["plain", "tagged"])
def test_format_response_round_trips(response_format):
    text = format_response("Paris", "I know European capitals.", 8.5, response_format)
    assert parse_response(text, response_format) == MetaConfResponse(
        "Paris", "I know European capitals.", 8.5
    )


COMPLETIONS = [
    "Answer: Paris\nSelf-reflection: I know this.\nConfidence: 8",  # right, conf 0.8 -> 1 - 0.2^2 = 0.96
    "Answer: Lyon\nSelf-reflection: Unsure.\nConfidence: 3",  # wrong, conf 0.3 -> 1 - 0.3^2 = 0.91
    "Answer: Paris\nSelf-reflection: I know this.",  # no confidence: format 0 -> 0
    "Paris, I think.",  # no format at all -> 0
]


def test_strict_rewards_by_hand():
    scorer = MetaConfScorer()
    records = [RECORD] * 4
    assert scorer.format([], COMPLETIONS, records).tolist() == [1.0, 1.0, 0.0, 0.0]
    assert scorer.calibration([], COMPLETIONS, records).tolist() == pytest.approx([0.96, 0.91, 0.0, 0.0])
    assert scorer.accuracy([], COMPLETIONS, records).tolist() == [
        1.0,
        0.0,
        1.0,
        1.0,
    ]  # whole text when no field
    assert scorer.stats["confidence_undefined_rate"] == 0.5


def test_upstream_format_rule_reads_a_missing_confidence_as_zero():
    scorer = MetaConfScorer(format_rule="upstream")
    records = [RECORD] * 4
    # upstream: ([reflection] + [confidence != 0]) / 2; a reflection alone passes the gate with confidence 0
    assert scorer.format([], COMPLETIONS, records).tolist() == [1.0, 1.0, 0.5, 0.0]
    assert scorer.calibration([], COMPLETIONS, records).tolist() == pytest.approx([0.96, 0.91, 0.0, 0.0])
    zero = ["Answer: Paris\nSelf-reflection: hm\nConfidence: 0"]
    assert scorer.format([], zero, [RECORD]).tolist() == [0.5]


def test_graded_accuracy_enters_the_calibration_target():
    scorer = MetaConfScorer(accuracy_mode="token_f1")
    record = QARecord("2", "Who directed Avatar?", ["James Cameron"])
    text = "Answer: the director James Cameron\nSelf-reflection: ok\nConfidence: 5"
    # tokens: director james cameron vs james cameron -> P 2/3, R 1, F1 0.8; calibration 1 - (0.8 - 0.5)^2
    assert scorer.accuracy([], [text], [record]).tolist() == pytest.approx([0.8])
    assert scorer.calibration([], [text], [record]).tolist() == pytest.approx([1 - 0.3**2])


def test_reflection_reward_without_a_judge_is_an_error():
    with pytest.raises(ValueError, match="needs a judge"):
        MetaConfScorer().reflection([], COMPLETIONS[:1], [RECORD])


def test_accuracy_on_completion_grades_the_whole_reply_as_upstream():
    """upstream: calculate_accuracy(questions, answers, model_responses, ...) reads the whole completion."""
    texts = [
        # field wrong, text has Paris
        "Answer: Lyon\nSelf-reflection: Paris was my other guess.\nConfidence: 3",
        "Answer: Paris\nSelf-reflection: I know this.\nConfidence: 8",
    ]
    on_answer, on_completion = MetaConfScorer(), MetaConfScorer(accuracy_on="completion")
    assert on_answer.accuracy([], texts, [RECORD] * 2).tolist() == [0.0, 1.0]
    assert on_completion.accuracy([], texts, [RECORD] * 2).tolist() == [1.0, 1.0]
    # the calibration target follows: 1 - (1 - 0.3)^2 instead of 1 - (0 - 0.3)^2
    assert on_completion.calibration([], texts, [RECORD] * 2).tolist() == pytest.approx([1 - 0.7**2, 0.96])
    assert on_answer.calibration([], texts, [RECORD] * 2).tolist() == pytest.approx([1 - 0.3**2, 0.96])
