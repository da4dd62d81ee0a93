"""The competence-band testbed: deterministic, disjoint by fact across splits and seeds, exact answers."""

from __future__ import annotations

import re

import pytest

from metalight.data.sources.competence import (
    FAMILIES,
    SPLIT_SHARES,
    CompetenceBandDataModule,
    draw,
    level,
    split_of,
)
from metalight.errors import ConfigError, DataError
from metalight.grading import is_correct


def _records(seed=0, **kwargs):
    kwargs.setdefault("per_level", {"train": 30, "val": 10, "test": 20})
    return {
        split: CompetenceBandDataModule(families=["arithmetic", "spelling"], seed=seed, **kwargs).records(
            split
        )
        for split in ("train", "val", "test")
    }


def test_same_seed_same_questions_other_seed_other_draws():
    a, b, c = _records(0), _records(0), _records(1)
    assert [r.question for r in a["test"]] == [r.question for r in b["test"]]
    assert [r.question for r in a["test"]] != [r.question for r in c["test"]]


def test_splits_are_disjoint_by_fact_for_every_seed():
    facts = {split: set() for split in ("train", "val", "test")}
    for seed in (0, 1, 2):
        for split, records in _records(seed).items():
            facts[split] |= {r.meta["fact"] for r in records}
    assert (
        not facts["train"] & facts["test"]
        and not facts["train"] & facts["val"]
        and not facts["val"] & facts["test"]
    )
    # both operand orders of a product are one fact, so they are always in one split
    assert split_of("*:7:8") == split_of("*:7:8")
    for family in FAMILIES.values():
        for lv in family:
            for i in range(min(lv.size, 200)):
                fact, question, _ = lv.make(i)
                assert split_of(fact) in SPLIT_SHARES


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_answers_are_exact(family):
    for lv in FAMILIES[family]:
        for _fact, question, answer in draw(lv, "train", 50, seed=3):
            if family == "arithmetic":
                a, word, b = re.fullmatch(r"What is (\d+) (times|\+) (\d+)\?", question).groups()
                assert int(answer) == (int(a) * int(b) if word == "times" else int(a) + int(b))
            else:
                word = re.search(r"'([a-z]+)'", question).group(1)
                if question.startswith("How many letters"):
                    assert answer == str(len(word))
                elif "last letter" in question:
                    assert answer == word[-1]
                else:
                    ordinal = question.split()[3]
                    position = ["first", "second", "third", "fourth"].index(ordinal)
                    assert answer == word[position]
            shown = answer if answer.isdigit() else f"'{answer}'"  # unquoted, "a" and "I" are words
            assert is_correct(f"The answer is {shown}.", [answer], "final")


def test_records_carry_level_and_family_and_any_size_on_demand():
    dm = CompetenceBandDataModule(
        families=["arithmetic"], levels=[8], per_level={"train": 500, "val": 0, "test": 0}
    )
    records = dm.records("train")
    assert len(records) == 500 and {r.meta["level"] for r in records} == {8}
    assert records[0].meta["family"] == "arithmetic" and records[0].meta["level_name"] == "three-digit sums"
    # a small level gives every fact its split holds, no more
    small = CompetenceBandDataModule(families=["arithmetic"], levels=[2], per_level=1000).records("test")
    assert len(small) == len(draw(level("arithmetic", 2), "test", 10**6, 0)) < 64


def test_bad_settings_name_the_key():
    with pytest.raises(ConfigError, match="unknown competence family 'algebra'"):
        CompetenceBandDataModule(families=["algebra"])
    with pytest.raises(ConfigError, match="levels 1..8, not 9"):
        CompetenceBandDataModule(levels=[9])
    with pytest.raises(ConfigError, match="per_level.train: -1"):
        CompetenceBandDataModule(per_level={"train": -1})


def test_rows_read_from_a_file_in_the_native_schema(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(
        '{"family": "arithmetic", "level": 2, "level_name": "one-digit products", "fact": "*:3:4", '
        '"question": "What is 3 times 4?", "answer": "12"}\n'
        '{"family": "arithmetic", "level": "two", "level_name": "x", "fact": "f", "question": "q", '
        '"answer": "1"}\n'
    )
    with pytest.raises(DataError, match=r"rows.jsonl:2: 'level' must be an integer"):
        CompetenceBandDataModule(path=str(path), val_fraction=0.0, test_fraction=0.0).records("train")
    dm = CompetenceBandDataModule(path=str(path), val_fraction=0.0, test_fraction=0.0, strict=False)
    (record,) = dm.records("train")
    assert record.answers == ["12"] and record.meta["level"] == 2
