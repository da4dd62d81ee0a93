"""FanOutQA single-hop questions read from the installed package."""

import json

import pytest

from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule, answer_aliases
from metalight.errors import DataError


def test_packaged_dev_set_gives_hundreds_of_short_answer_questions():
    module = FanOutQASingleHopDataModule(strict=False)
    sizes = {split: len(module.records(split)) for split in ("train", "val", "test")}
    assert sum(sizes.values()) > 1000 and min(sizes.values()) > 150
    groups = {split: {r.meta["group"] for r in module.records(split)} for split in sizes}
    assert not groups["train"] & groups["test"]
    assert all(r.answers and all(a.strip() for a in r.answers) for r in module.records("val"))


def test_packaged_dev_set_has_one_empty_answer_which_strict_mode_reports():
    with pytest.raises(DataError, match=r"fanout-final-dev\.json:\d+ \(record \d+\) > decomposition\[\d+\].*empty answer"):
        FanOutQASingleHopDataModule().setup()


@pytest.mark.parametrize(("answer", "aliases"), [
    ("James Cameron", ["James Cameron"]), ("The Amazing Spider-Man 2 (2014)",
                                           ["The Amazing Spider-Man 2 (2014)", "The Amazing Spider-Man 2"]),
    (45, ["45"]), (242495, ["242495", "242,495"]), (345.8, ["345.8"]), (3.0, ["3"]),
    (True, None), (["a", "b"], None), ({"x": 1}, None),
])
def test_answer_aliases(answer, aliases):
    assert answer_aliases(answer) == aliases


def test_user_file_in_the_same_schema(tmp_path):
    item = {"id": "top", "question": "multi?", "answer": "x", "categories": [],
            "decomposition": [{"id": "s1", "question": "Who directed Avatar?", "answer": "James Cameron",
                               "decomposition": [], "depends_on": [], "evidence": {}},
                              {"id": "s2", "question": "List them", "answer": ["a", "b"], "decomposition": [],
                               "depends_on": [], "evidence": {}}]}
    path = tmp_path / "fanout.json"
    path.write_text(json.dumps([item]))
    module = FanOutQASingleHopDataModule(path=str(path), val_fraction=0, test_fraction=0)
    assert [r.question for r in module.records("train")] == ["Who directed Avatar?"]
