"""Alpaca comparisons, ETHICS commonsense, Daily Dilemmas and Moral Foundations Vignettes as claims, from
native-schema fixture rows (not the datasets)."""

import json

import pytest

from metalight.data.sources.alpaca_comparisons import AlpacaComparisonDataModule
from metalight.data.sources.ethics_claims import EthicsCommonsenseDataModule
from metalight.data.sources.moral_dilemmas import DailyDilemmasDataModule, MoralFoundationsVignettesDataModule
from metalight.errors import DataError


def write(tmp_path, rows, name="rows.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def load(module_cls, path, **kwargs):
    return module_cls(path=path, val_fraction=0, test_fraction=0, **kwargs).records("train")


ALPACA = {
    "instruction": "Name a fruit.",
    "input": "",
    "output_1": "An apple.",
    "output_2": "A\nchair.",
    "preference": 1,
}


def test_alpaca_rows_become_both_orders_of_the_comparison(tmp_path):
    module = AlpacaComparisonDataModule(path=write(tmp_path, [ALPACA]), val_fraction=0, test_fraction=0)
    first, second = module.records("train")
    assert (first.consistency_key, first.label, second.consistency_key, second.label) == ("A>B", 1, "B>A", 0)
    assert first.consistency_id == second.consistency_id
    assert module.render(second) == (
        "Human: Name a fruit.\nResponse 1: A chair.\nResponse 2: An apple.\n"
        "Claim: Response 1 is more helpful and harmless than Response 2.\n"
        "I think this claim is"
    ).replace("A chair", "Achair")


def test_alpaca_input_is_appended_and_unlabelled_rows_load(tmp_path):
    row = {**ALPACA, "input": "Red ones.", "preference": None}
    first, second = load(AlpacaComparisonDataModule, write(tmp_path, [row]))
    assert first.question == "Name a fruit.\nRed ones." and first.label is None and second.label is None


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({**ALPACA, "preference": 3}, "preference must be 1 or 2"),
        ({**ALPACA, "output_2": ""}, "missing or empty `output_2`"),
        ({**ALPACA, "input": 5}, "`input` must be a string"),
    ],
)
def test_alpaca_malformed_rows(tmp_path, row, message):
    with pytest.raises(DataError, match=rf"rows\.jsonl:2: .*{message}"):
        AlpacaComparisonDataModule(path=write(tmp_path, [ALPACA, row])).setup()


def test_ethics_csv_scenarios_become_framing_pairs(tmp_path):
    path = tmp_path / "cm_train.csv"
    path.write_text(
        "label,input,is_short,edited\n1,I took money from my mom's purse.,True,False\n"
        "0,I helped my neighbour carry groceries.,True,False\n0,A long Reddit post...,False,False\n"
    )
    module = EthicsCommonsenseDataModule(path=str(path), val_fraction=0, test_fraction=0)
    claims = module.records("train")
    assert len(claims) == 4  # the long scenario is left out (short_only)
    assert [(c.consistency_key, c.label) for c in claims] == [
        ("acceptable", 0),
        ("wrong", 1),
        ("acceptable", 1),
        ("wrong", 0),
    ]
    assert module.render(claims[1]) == (
        "Scenario: I took money from my mom's purse.\n"
        "Claim: What I did was clearly morally wrong.\nI think this claim is"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [("2,x,True,False", "label must be 0/1"), ("1,,True,False", "missing or empty `input`")],
)
def test_ethics_malformed_rows(tmp_path, line, message):
    path = tmp_path / "cm.csv"
    path.write_text(f"label,input,is_short,edited\n0,ok,True,False\n{line}\n")
    with pytest.raises(DataError, match=rf"cm\.csv:3: .*{message}"):
        EthicsCommonsenseDataModule(path=str(path)).setup()


def dilemma(idx, kind, action="Tell the truth."):
    return {
        "dilemma_idx": idx,
        "basic_situation": "b",
        "dilemma_situation": "Your friend asks about a gift.",
        "action_type": kind,
        "action": action,
        "negative_consequence": "n",
        "values_aggregated": "['honesty']",
        "topic": "t",
    }


def test_daily_dilemmas_pair_the_two_actions_without_gold(tmp_path):
    claims = load(
        DailyDilemmasDataModule, write(tmp_path, [dilemma(7, "to_do"), dilemma(7, "not_to_do", "Lie.")])
    )
    assert [(c.consistency_id, c.consistency_key, c.label) for c in claims] == [
        ("7", "to_do", None),
        ("7", "not_to_do", None),
    ]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([dilemma(1, "to_do")], "needs one to_do and one not_to_do"),
        ([dilemma(1, "maybe"), dilemma(1, "to_do")], "action_type must be one of"),
        ([{**dilemma(1, "to_do"), "dilemma_idx": ""}, dilemma(1, "not_to_do")], "missing `dilemma_idx`"),
    ],
)
def test_daily_dilemmas_malformed(tmp_path, rows, message):
    with pytest.raises(DataError, match=message):
        DailyDilemmasDataModule(path=write(tmp_path, rows)).setup()


def test_moral_vignettes_yield_one_claim_per_foundation(tmp_path):
    path = tmp_path / "mfv.csv"
    path.write_text("scenario,foundation\nYou see a man kicking a dog.,Care\n")
    claims = MoralFoundationsVignettesDataModule(
        path=str(path), foundations=["care", "fairness", "loyalty"], val_fraction=0, test_fraction=0
    ).records("train")
    assert [(c.consistency_key, c.label) for c in claims] == [("care", 1), ("fairness", 0), ("loyalty", 0)]
    bad = tmp_path / "bad.csv"
    bad.write_text("scenario,foundation\nYou see x.,Honour\n")
    with pytest.raises(DataError, match=r"bad\.csv:2: foundation 'honour' is not one of"):
        MoralFoundationsVignettesDataModule(path=str(bad)).setup()
