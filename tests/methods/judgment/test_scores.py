"""Judgment metrics against sklearn-free hand counts, and the summary table."""

import math

import pytest

from metalight.methods.judgment.scores import judgment_metrics, summary_table


def test_metrics_by_hand():
    actual = ["can", "can", "cannot", "cannot", "uncertain"]
    predicted = ["can", "cannot", "cannot", "cannot", "can"]
    p_yes = [0.9, 0.4, 0.3, 0.5, 0.8]
    m = judgment_metrics(
        actual,
        predicted,
        p_yes,
        [True, True, True, False, True],
        [1, 1, 0, 0, 0.6],
        ("can", "uncertain", "cannot"),
    )
    assert m["judgment_accuracy"] == pytest.approx(3 / 5)
    assert m["qa_accuracy"] == pytest.approx(2 / 5)
    assert m["answer_accuracy"] == pytest.approx(2.6 / 5)
    # positives (can): 0.9, 0.4; negatives: 0.3, 0.5, 0.8 -> pairs won: 0.9 beats 3, 0.4 beats 1 -> 4 / 6
    assert m["judgment_auroc"] == pytest.approx(4 / 6)
    assert m["judgment_unparsed_rate"] == pytest.approx(1 / 5)
    assert m["label_frac_uncertain"] == pytest.approx(0.2) and m["pred_frac_can"] == pytest.approx(0.4)
    assert m["confusion"]["rows_actual_cols_predicted"] == [[1, 0, 1], [1, 0, 0], [0, 0, 2]]


def test_auroc_is_nan_with_one_class():
    m = judgment_metrics(
        ["cannot", "cannot"], ["cannot", "can"], [0.2, 0.7], [True, True], [0, 0], ("can", "cannot")
    )
    assert math.isnan(m["judgment_auroc"]) and m["judgment_accuracy"] == 0.5


def test_summary_table_has_one_row_per_round():
    row = {"judgment_accuracy": 0.523, "qa_accuracy": 0.452, "judgment_auroc": 0.5234}
    table = summary_table([{"epoch": 0, "train": row, "val": row}, {"epoch": 1, "train": row}])
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["Epoch", "Train", "Judg", "Train"]
    assert lines[2].split() == ["0", "52.3%", "45.2%", "0.5234", "52.3%", "45.2%", "0.5234"]
    assert lines[3].split() == ["1", "52.3%", "45.2%", "0.5234", "-", "-", "-"]
