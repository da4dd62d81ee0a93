"""NQ-Open: native rows (hub and official jsonl share the schema) map to records with split-unique ids."""

from pathlib import Path

from metalight.data.sources.nq_open import NQOpenDataModule

ROWS = Path(__file__).parent / "fixtures" / "nq_open_native_rows.jsonl"


def test_native_rows_map_to_records():
    records = NQOpenDataModule(path={"val": str(ROWS)}).records("val")
    assert [r.id for r in records] == ["val-0", "val-1", "val-2"]
    assert records[0].question == "where is the capital of south africa located"
    assert records[0].answers == ["Pretoria", "Cape Town", "Bloemfontein"]
    assert records[2].answers == ["four", "4"] and records[2].context is None


def test_single_file_ids_are_row_positions_and_survive_the_split():
    module = NQOpenDataModule(path=str(ROWS), val_fraction=0, test_fraction=0)
    assert sorted(r.id for r in module.records("train")) == ["all-0", "all-1", "all-2"]
