"""EHQ-3000: native rows map to decline-worthy records; the packaged release is read from `ehq`."""

from collections import Counter
from pathlib import Path

import pytest

from metalight.data.sources.ehq import EHQDataModule
from metalight.errors import ConfigError

ROWS = Path(__file__).parent / "fixtures" / "ehq_native_rows.json"


def all_records(module):
    return [r for split in ("train", "val", "test") for r in module.records(split)]


def test_answers_follow_upstream_gold_rule():
    module = EHQDataModule(path=str(ROWS), val_fraction=0, test_fraction=0)
    by_category = {r.meta["category"]: r for r in all_records(module)}
    assert by_category["FEQ"].answers == [] and by_category["CCQ"].answers == []
    assert by_category["PCQ"].answers == ["Ana Testa"]
    assert by_category["HNQ"].answers == ["1792", "the year 1792"]
    assert all(r.meta["should_decline"] and r.meta["expected_knowability"] == 0 for r in by_category.values())
    assert {c for c, r in by_category.items() if r.meta["answerable"]} == {"PCQ", "HNQ"}
    assert by_category["CCQ"].context.endswith("opens on [REDACTED].") and by_category["FEQ"].context is None


def test_category_filter_and_closed_book_documents():
    module = EHQDataModule(
        path=str(ROWS), categories=["CCQ"], documents=False, val_fraction=0, test_fraction=0
    )
    records = all_records(module)
    assert [r.id for r in records] == ["CCQ-FIN-901"] and records[0].context is None and module.dropped == 3


def test_unknown_category_is_a_config_error():
    with pytest.raises(ConfigError, match=r"unknown categories \['XYZ'\]"):
        EHQDataModule(categories=["XYZ"])


def test_packaged_release_has_3000_questions_balanced_in_every_split():
    module = EHQDataModule()
    records = all_records(module)
    assert len(records) == 3000 and len({r.id for r in records}) == 3000
    assert Counter(r.meta["category"] for r in records) == {"FEQ": 750, "PCQ": 750, "HNQ": 750, "CCQ": 750}
    val = Counter(r.meta["category"] for r in module.records("val"))
    assert max(val.values()) - min(val.values()) <= 2
    groups = {split: {r.meta["group"] for r in module.records(split)} for split in ("train", "test")}
    assert not groups["train"] & groups["test"]
