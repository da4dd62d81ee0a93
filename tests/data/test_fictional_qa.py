"""FictionalQA: duplicates dropped, natural answers, ESMA's half/half split by event."""

import random
from pathlib import Path

from metalight.data.sources.fictional_qa import FictionalQADataModule

ROWS = Path(__file__).parent / "fixtures" / "fictional_qa_native_rows.jsonl"


def test_rows_map_to_records_without_duplicates():
    module = FictionalQADataModule(path=str(ROWS))
    records = module.records("train") + module.records("val")
    assert len(records) == 5 and module.dropped == 1
    by_id = {r.id: r for r in records}
    record = by_id["event_000_style_news_num_000_question_001"]
    assert record.answers == ["The harbor guilds"] and record.meta["span_answer"] == "the harbor guilds"


def test_esma_split_is_half_the_sorted_events_shuffled_with_seed_42():
    module = FictionalQADataModule(path=str(ROWS))
    events = ["event_000", "event_001", "event_002", "event_003"]
    random.Random(42).shuffle(events)
    assert {r.meta["event_id"] for r in module.records("train")} == set(events[:2])
    assert {r.meta["event_id"] for r in module.records("val")} == set(events[2:])
    assert module.records("test") == []


def test_fraction_split_keeps_events_together():
    module = FictionalQADataModule(path=str(ROWS), split="fractions", val_fraction=0.25, test_fraction=0.25)
    seen = {split: {r.meta["event_id"] for r in module.records(split)} for split in ("train", "val", "test")}
    assert not (seen["train"] & seen["val"]) and not (seen["train"] & seen["test"])
    assert sum(len(v) for v in seen.values()) == 4
