"""HotpotQA: passages become the open-book context, formatted as Know-thyself does."""

from pathlib import Path

from metalight.data.sources.hotpot_qa import HotpotQADataModule
from metalight.prompts import direct_prompt

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = (
    "[Ed Wood (film)]\nEd Wood is a 1994 biographical film. It was directed by Tim Burton.\n\n"
    "[Scott Derrickson]\nScott Derrickson is an American director. He lives in Los Angeles.\n\n"
    "[Ed Wood]\nEdward Davis Wood Jr. was an American filmmaker."
)


def first(path, **kwargs):
    return HotpotQADataModule(path={"val": str(path)}, **kwargs).records("val")[0]


def test_hub_row_gives_all_passages_as_context():
    record = first(FIXTURES / "hotpot_qa_native_rows.jsonl")
    assert (record.id, record.answers) == ("5a8b57f25542995d1e6f1371", ["yes"])
    assert record.context == EXPECTED
    assert record.meta["type"] == "comparison"
    assert record.meta["supporting_titles"] == ["Ed Wood", "Scott Derrickson"]
    assert direct_prompt(record.question, context=record.context).startswith("Context:\n[Ed Wood (film)]\n")


def test_official_file_gives_the_same_record():
    official = first(FIXTURES / "hotpot_qa_official_native_rows.json")
    hub = first(FIXTURES / "hotpot_qa_native_rows.jsonl")
    assert (official.id, official.question, official.answers, official.context) == (
        hub.id,
        hub.question,
        hub.answers,
        hub.context,
    )


def test_supporting_only_and_closed_book():
    supporting = first(FIXTURES / "hotpot_qa_native_rows.jsonl", context="supporting")
    assert supporting.context.startswith("[Scott Derrickson]\n")
    assert "Ed Wood (film)" not in supporting.context
    assert first(FIXTURES / "hotpot_qa_native_rows.jsonl", context="none").context is None
