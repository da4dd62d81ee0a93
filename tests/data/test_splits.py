"""Seeded splits and caps, stratified by label or by a meta key."""

from collections import Counter
from dataclasses import dataclass

import pytest

from metalight.data.records import QARecord
from metalight.data.sources.triviaqa import TriviaQADataModule
from metalight.data.splits import cap_records, label_of, labeller, split_records
from metalight.errors import ConfigError


@dataclass(frozen=True)
class Labelled:
    id: str
    label: bool


def records_with_labels(n_true, n_false):
    return [Labelled(f"t{i}", True) for i in range(n_true)] + [
        Labelled(f"f{i}", False) for i in range(n_false)
    ]


def test_label_of_reads_the_attribute_then_meta():
    assert label_of(Labelled("a", False)) is False
    assert label_of(QARecord("a", "q?", ["x"], meta={"label": "yes", "category": "FEQ"})) == "yes"
    assert label_of(QARecord("a", "q?", ["x"], meta={"category": "FEQ"}), "category") == "FEQ"
    assert label_of(QARecord("a", "q?", ["x"])) is None


def test_stratified_split_keeps_label_proportions():
    records = records_with_labels(20, 180)
    plain = split_records(records, 0.1, 0.1, seed=3)
    strat = split_records(records, 0.1, 0.1, seed=3, label_fn=labeller(True))
    assert Counter(r.label for r in strat["val"]) == {True: 2, False: 18}
    assert Counter(r.label for r in strat["test"]) == {True: 2, False: 18}
    assert sum(len(v) for v in strat.values()) == 200
    assert split_records(records, 0.1, 0.1, seed=3, label_fn=labeller(True)) == strat  # deterministic
    assert {len(v) for v in plain.values()} == {20, 160}


def test_stratified_cap_takes_proportional_shares_in_original_order():
    records = records_with_labels(30, 70)
    capped = cap_records(records, 10, seed=0, split="val", label_fn=labeller(True))
    assert Counter(r.label for r in capped) == {True: 3, False: 7}
    assert capped == sorted(capped, key=records.index)
    assert cap_records(records, 10, seed=0, split="val") == cap_records(records, 10, seed=0, split="val")


def test_datamodule_stratify_by_meta_key_and_error_without_labels(tmp_path):
    from tests.data.test_datamodule import trivia_row, write_jsonl  # same schema helpers

    path = write_jsonl(tmp_path / "t.jsonl", [trivia_row(i) for i in range(40)])
    with pytest.raises(ConfigError, match=r"stratify: True but no record has a label"):
        TriviaQADataModule(path=str(path), stratify=True).setup()
    module = TriviaQADataModule(path=str(path), stratify="source", max_samples={"val": 2})
    assert len(module.records("val")) == 2
