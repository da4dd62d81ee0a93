"""Know-thyself judgment targets: system prompt + "Can you answer this question correctly?" ->
``\\boxed{yes|no|uncertain}`` from the ability label of the model's k collected answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from metalight.data.examples import SFTExample
from metalight.data.records import QARecord
from metalight.methods.judgment.labels import Ability, LabelSettings, classify_ability
from metalight.methods.sft.answers import AnswerSet, require_answers
from metalight.prompts import judgment_label, judgment_prompt


def abilities(
    records: Sequence[QARecord], answers: Mapping[str, AnswerSet], labels: LabelSettings | None = None
) -> dict[str, Ability]:
    """The ability class of every record from its collected answers (``labels``: default
    ``LabelSettings()``)."""
    require_answers(records, answers, "judgment")
    return {r.id: classify_ability(answers[r.id].fraction_correct, labels) for r in records}


def judgment_example(
    record: QARecord, ability: Ability, labels: LabelSettings | None = None, with_context: bool = True
) -> SFTExample:
    """One Know-thyself judgment example; ``with_context=False`` drops passages as upstream training did."""
    labels = LabelSettings() if labels is None else labels
    context = record.context if with_context else None
    system, user = judgment_prompt(record.question, labels.label_mode, context)
    return SFTExample(
        prompt=user,
        completion=judgment_label(ability, labels.include_reason),
        system=system,
        id=record.id,
        meta={"ability": ability},
    )


def judgment_targets(
    records: Sequence[QARecord],
    answers: Mapping[str, AnswerSet],
    labels: LabelSettings | None = None,
    with_context: bool = True,
) -> list[SFTExample]:
    """Judgment prompt -> boxed label of the ability the collected answers show (see ``LabelSettings``)."""
    classes = abilities(records, answers, labels)
    return [judgment_example(r, classes[r.id], labels, with_context) for r in records]
