"""FanOutQA single-hop questions read from the installed package."""

import json
from pathlib import Path

import pytest

from metalight.data.sources.fanoutqa import (
    FanOutQAMultiHopDataModule,
    FanOutQASingleHopDataModule,
    answer_aliases,
    answer_parts,
    part_scores,
    render_answer,
)
from metalight.errors import DataError

ROWS = Path(__file__).parent / "fixtures" / "fanoutqa_native_rows.json"


def test_packaged_dev_set_gives_hundreds_of_short_answer_questions():
    module = FanOutQASingleHopDataModule(strict=False)
    sizes = {split: len(module.records(split)) for split in ("train", "val", "test")}
    assert sum(sizes.values()) > 1000 and min(sizes.values()) > 150
    groups = {split: {r.meta["group"] for r in module.records(split)} for split in sizes}
    assert not groups["train"] & groups["test"]
    assert all(r.answers and all(a.strip() for a in r.answers) for r in module.records("val"))


def test_packaged_dev_set_has_one_empty_answer_which_strict_mode_reports():
    where = r"fanout-final-dev\.json:\d+ \(record \d+\) > decomposition\[\d+\]"
    with pytest.raises(DataError, match=where + ".*empty answer"):
        FanOutQASingleHopDataModule().setup()


@pytest.mark.parametrize(
    ("answer", "aliases"),
    [
        ("James Cameron", ["James Cameron"]),
        ("The Amazing Spider-Man 2 (2014)", ["The Amazing Spider-Man 2 (2014)", "The Amazing Spider-Man 2"]),
        (45, ["45"]),
        (242495, ["242495", "242,495"]),
        (345.8, ["345.8"]),
        (3.0, ["3"]),
        (True, None),
        (["a", "b"], None),
        ({"x": 1}, None),
    ],
)
def test_answer_aliases(answer, aliases):
    assert answer_aliases(answer) == aliases


def test_user_file_in_the_same_schema(tmp_path):
    item = {
        "id": "top",
        "question": "multi?",
        "answer": "x",
        "categories": [],
        "decomposition": [
            {
                "id": "s1",
                "question": "Who directed Avatar?",
                "answer": "James Cameron",
                "decomposition": [],
                "depends_on": [],
                "evidence": {},
            },
            {
                "id": "s2",
                "question": "List them",
                "answer": ["a", "b"],
                "decomposition": [],
                "depends_on": [],
                "evidence": {},
            },
        ],
    }
    path = tmp_path / "fanout.json"
    path.write_text(json.dumps([item]))
    module = FanOutQASingleHopDataModule(path=str(path), val_fraction=0, test_fraction=0)
    assert [r.question for r in module.records("train")] == ["Who directed Avatar?"]


def test_multihop_alias_rule_on_native_rows():
    module = FanOutQAMultiHopDataModule(path=str(ROWS), val_fraction=0, test_fraction=0)
    by_id = {r.id: r for r in module.records("train")}
    assert sorted(by_id) == ["top1", "top2", "top3", "top5"] and module.dropped == 1  # the yes/no question
    assert by_id["top1"].answers == ["Pat Example: Right; Mark Sample: Left"]
    assert by_id["top1"].meta["answer_parts"] == [["Pat Example"], ["Right"], ["Mark Sample"], ["Left"]]
    assert by_id["top2"].answers == ["2006, 2012"] and by_id["top2"].meta["answer_kind"] == "list"
    assert by_id["top3"].answers == ["3"] and by_id["top3"].meta["answer_parts"] == [["3"]]
    assert by_id["top5"].answers == ["The Example Returns (2014)", "The Example Returns"]


def test_part_scores_are_fanoutqa_loose_and_strict_accuracy():
    module = FanOutQAMultiHopDataModule(path=str(ROWS), val_fraction=0, test_fraction=0)
    record = {r.id: r for r in module.records("train")}["top1"]
    assert part_scores(record, "Pat Example bats right, Mark Sample bats left.") == (1.0, True)
    assert part_scores(record, "Pat Example is right-handed.") == (0.5, False)


def test_answer_parts_and_rendering():
    assert answer_parts({"A": True, "B": [1, 20000]}) == [["A"], ["yes"], ["B"], ["1"], ["20000", "20,000"]]
    assert render_answer({"A": 61.6, "B": ["x", "y"]}) == "A: 61.6; B: x, y"


def test_packaged_multihop_questions():
    module = FanOutQAMultiHopDataModule()
    records = [r for split in ("train", "val", "test") for r in module.records(split)]
    assert len(records) == 309 and module.dropped == 1
    kinds = {r.meta["answer_kind"] for r in records}
    assert kinds == {"dict", "list", "scalar"}
    assert all(r.answers and r.meta["answer_parts"] for r in records)
