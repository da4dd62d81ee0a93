"""GSM8K-verification candidates: a model's sampled solutions become labelled rows next to the gold one."""

from metalight.data.sources.gsm8k_verification import read_problems
from metalight.methods.icm.gsm8k_candidates import build_verification_rows


def test_build_rows_generates_labelled_candidates(tiny):
    model, tokenizer = tiny
    problems = read_problems()[:2]
    rows = build_verification_rows(
        model, tokenizer, problems, num_candidates=2, max_new_tokens=6, batch_size=2
    )
    gold = [r for r in rows if r["source"] == "gold"]
    assert [r["label"] for r in gold] == [1, 1] and len(rows) >= 3
    for row in rows:
        assert row["label"] == int(row["answer"] == row["gold_answer"])
        assert row["consistency_id"] in {"gsm8k_0", "gsm8k_1"}
