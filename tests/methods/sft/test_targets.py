"""Target builders: the right prompt and target per upstream recipe; missing answers are a clear error."""

import pytest

from metalight.data.records import QARecord
from metalight.errors import DataError
from metalight.methods.judgment.labels import LabelSettings
from metalight.methods.judgment.targets import abilities, judgment_targets
from metalight.methods.sft.answers import AnswerSet
from metalight.methods.sft.targets import knowledge_targets, meta_answer_targets
from metalight.prompts import KT_KNOWLEDGE_SYSTEM, direct_prompt, meta_prompt

RECORDS = [
    QARecord("a", "Who wrote Hamlet?", ["William Shakespeare", "Shakespeare"]),
    QARecord("b", "Capital of France?", ["Paris"], context="[France]\nParis is the capital."),
]


def test_meta_answer_target_is_yes_exactly_when_the_own_answer_was_correct():
    answers = {"a": AnswerSet(["Shakespeare"], [True]), "b": AnswerSet(["Lyon"], [False])}
    examples = meta_answer_targets(RECORDS, answers)
    assert [e.completion for e in examples] == ["Yes", "No"]
    assert examples[0].prompt == meta_prompt("Who wrote Hamlet?") and examples[0].system is None
    assert [e.completion for e in meta_answer_targets(RECORDS, answers, language="ko")] == ["예", "아니요"]


def test_builders_without_collected_answers_raise_a_clear_error():
    message = r"1 of 2 records have no collected answers \(first: 'b'\).*collect_answers"
    with pytest.raises(DataError, match=message):
        meta_answer_targets(RECORDS, {"a": AnswerSet(["x"], [False])})
    with pytest.raises(DataError, match="judgment: 2 of 2 records"):
        judgment_targets(RECORDS, {})


def test_knowledge_targets_follow_each_upstream_recipe():
    esma = knowledge_targets(RECORDS, "esma", seed=3)
    assert esma[0].prompt == direct_prompt("Who wrote Hamlet?")
    assert esma[0].completion in RECORDS[0].answers
    assert knowledge_targets(RECORDS, "esma", seed=3)[0].completion == esma[0].completion  # seeded
    kt = knowledge_targets(RECORDS, "know_thyself")
    assert kt[0].system == KT_KNOWLEDGE_SYSTEM and kt[0].prompt == "Who wrote Hamlet?"
    assert kt[0].completion == "William Shakespeare"  # the primary (first) answer
    assert kt[1].prompt.startswith("[France]")


def test_judgment_targets_box_the_ability_and_keep_context_optional():
    answers = {
        "a": AnswerSet(["Shakespeare"] * 5, [True] * 5),
        "b": AnswerSet(["x"] * 5, [True, True, True, False, False]),
    }
    binary = judgment_targets(RECORDS, answers)
    assert [e.completion for e in binary] == ["\\boxed{yes}", "\\boxed{no}"]
    assert binary[0].prompt == "Can you answer this question correctly?\n\nQuestion: Who wrote Hamlet?"
    assert binary[0].system.endswith("Output ONLY \\boxed{yes} or \\boxed{no}.")
    assert "Context:\n[France]" in binary[1].prompt
    assert "Context" not in judgment_targets(RECORDS, answers, with_context=False)[1].prompt
    uncertainty = LabelSettings(label_mode="uncertainty")
    assert [e.completion for e in judgment_targets(RECORDS, answers, uncertainty)] == [
        "\\boxed{yes}",
        "\\boxed{uncertain}",
    ]
    assert abilities(RECORDS, answers, uncertainty) == {"a": "can", "b": "uncertain"}


def test_replay_targets_are_the_direct_prompts_with_the_models_own_answers():
    from metalight.methods.sft.targets import answer_replay_targets

    answers = {"a": AnswerSet(["Shakespeare wrote it"], [True]), "b": AnswerSet(["  "], [False])}
    (example,) = answer_replay_targets(
        RECORDS, answers, system="Be brief."
    )  # an empty answer is not replayed
    assert (
        example.prompt == direct_prompt("Who wrote Hamlet?") and example.completion == "Shakespeare wrote it"
    )
    assert example.system == "Be brief." and example.meta["target"] == "replay"
