"""ClaimRecord validation and the claim DataModule base: ids unique, groups kept whole by splits and caps."""

import json

import pytest

from metalight.data.claims import ClaimRecord, as_label
from metalight.data.sources.gsm8k_verification import GSM8KVerificationDataModule
from metalight.errors import DataError


def claim(**overrides):
    fields = dict(id="c1", question="Q?", claim="A.", label=1, consistency_id="q", consistency_key="a")
    return ClaimRecord(**{**fields, **overrides})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"question": " "}, "empty or non-text question"),
        ({"claim": ""}, "empty or non-text claim"),
        ({"consistency_id": ""}, "empty or non-text consistency_id"),
        ({"label": 2}, "label must be 0, 1 or missing"),
        ({"claim_2": ""}, "empty second response"),
    ],
)
def test_invalid_claims_name_where_and_field(overrides, message):
    with pytest.raises(DataError, match=rf"f\.jsonl:3: {message}"):
        claim(**overrides).validate("f.jsonl:3")


def test_labels_parse_from_native_spellings():
    assert [as_label(v, "w") for v in (True, 0, "1", "false", " TRUE ")] == [1, 0, 1, 0, 1]
    with pytest.raises(DataError, match="w: label must be 0/1"):
        as_label(3, "w")


def gsm_rows(problems=6, per_problem=3):
    return [
        {
            "id": f"p{p}-{k}",
            "question": f"Problem {p}?",
            "choice": f"Work.\nThe answer is {k}.",
            "answer": str(k),
            "label": int(k == 0),
            "consistency_id": f"p{p}",
        }
        for p in range(problems)
        for k in range(per_problem)
    ]


def test_splits_and_caps_keep_consistency_groups_whole(tmp_path):
    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in gsm_rows(10)))
    module = GSM8KVerificationDataModule(
        path=str(path), val_fraction=0.2, test_fraction=0.2, seed=1, max_samples={"train": 7}
    )
    module.setup()
    train = module.records("train")
    assert len(train) == 6  # whole groups of 3 up to 7 claims
    for split in ("train", "val", "test"):
        groups = {r.consistency_id for r in module.records(split)}
        for other in {"train", "val", "test"} - {split}:
            assert groups.isdisjoint({r.consistency_id for r in module.records(other)})


def test_duplicate_claim_ids_are_an_error(tmp_path):
    rows = gsm_rows(1, 2)
    rows[1]["id"] = rows[0]["id"]
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match="claim id 'p0-0' occurs twice"):
        GSM8KVerificationDataModule(path=str(path)).setup()
