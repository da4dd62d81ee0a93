"""The equal-CPU comparison's report from answer files: before → after with paired intervals on the trained
family and on every transfer set (the accuracy on tasks no arm trained on), the probe-ceiling table, and the
errors that say which step to run first."""

import json
import math
import random

import pytest

from scripts.learning_comparison import fmt, hanley_mcneil_se, main


def _rows(family: str, n: int, seed: int, informed: bool, drop_right: int = 0):
    """``n`` answers of one held-out set; ``informed`` gives P(yes) that ranks right answers above wrong ones;
    ``drop_right`` turns that many right answers wrong (the same ids before and after)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        correct = i % 3 == 0 and i // 3 >= drop_right
        p_yes = (0.6 if correct else 0.3) + rng.uniform(-0.05, 0.05) if informed else rng.uniform(0.2, 0.4)
        meta = {"dataset": ("fanoutqa", "ehq")[i % 2]}
        if family != "fanoutqa_ehq":
            meta = {"family": family, "level": 1 + i % 4, "level_name": f"level {1 + i % 4}"}
        rows.append(
            {"id": f"{family}:{i}", "correct": correct, "said_yes": p_yes > 0.5, "p_yes": p_yes, "meta": meta}
        )
    return rows


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def comparison(tmp_path):
    """A comparison directory: base answers, one arm that learned on arithmetic and lost 10 spelling
    answers."""
    sizes = {"arithmetic": 120, "spelling": 90, "fanoutqa_ehq": 60}
    for name, n in sizes.items():
        _write(tmp_path / f"base.{name}.jsonl", _rows(name, n, seed=1, informed=False))
    _write(tmp_path / "arm.arithmetic.jsonl", _rows("arithmetic", 120, seed=2, informed=True))
    _write(tmp_path / "arm.spelling.jsonl", _rows("spelling", 90, seed=1, informed=False, drop_right=10))
    _write(tmp_path / "arm.fanoutqa_ehq.jsonl", _rows("fanoutqa_ehq", 60, seed=1, informed=False))
    args = {"arm": "esma_auroc", "args": [], "cpu_minutes": 8.0, "steps": 12, "log_dir": str(tmp_path)}
    (tmp_path / "esma_auroc.json").write_text(json.dumps(args))
    for name in sizes:
        (tmp_path / f"esma_auroc.{name}.jsonl").write_text((tmp_path / f"arm.{name}.jsonl").read_text())
    return tmp_path


def test_report_shows_before_after_on_the_trained_and_the_transfer_sets(comparison, capsys):
    main(["report", "--out", str(comparison), "--resamples", "200"])
    text = (comparison / "results.md").read_text()
    result = json.loads((comparison / "results.json").read_text())["arms"][0]

    arithmetic = result["arithmetic"]["change"]["auroc_type2"]
    assert arithmetic["value"] > 0.3 and arithmetic["low"] > 0 and arithmetic["p_value"] < 0.05
    # Spelling: 30 of 90 right before, 20 after; accuracy 0.333 -> 0.222, paired on the same ids.
    spelling = result["spelling"]
    assert spelling["before"]["accuracy"]["value"] == pytest.approx(30 / 90)
    assert spelling["after"]["accuracy"]["value"] == pytest.approx(20 / 90)
    assert spelling["change"]["accuracy"]["p_value"] < 0.05
    # FanOutQA alone: the 30 rows tagged fanoutqa, unchanged.
    assert result["fanoutqa"]["n"] == 30
    assert result["fanoutqa"]["change"]["accuracy"]["value"] == 0

    transfer = text.split("none of them trained on")[1]
    row = next(line for line in transfer.splitlines() if line.startswith("| `esma_auroc`"))
    spelling_cell, fanout_cell = row.split(" | ")[1], row.split(" | ")[3]
    assert spelling_cell.startswith("0.333 → 0.222, -0.111 [")
    assert fanout_cell.startswith(f"{result['fanoutqa']['before']['accuracy']['value']:.3f} → ")
    assert "AUROC₂ (ceiling nan)" in text  # no ceiling.json: said, not invented
    assert (comparison / "levels_esma_auroc.png").stat().st_size > 0


def test_run_before_the_pool_names_the_missing_file_and_the_step(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["run", "--arms", "esma_auroc", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert f"{tmp_path}/pool.jsonl is missing" in err
    assert "learning_comparison.py pool" in err


def test_hanley_mcneil_standard_error_by_hand():
    # AUROC 0.5, 10 right and 10 wrong: Q1 = Q2 = 1/3, SE² = (0.25 + 9·(1/12) + 9·(1/12)) / 100.
    assert hanley_mcneil_se(0.5, 10, 10) == pytest.approx(math.sqrt(1.75 / 100))


def test_a_report_reuses_an_arms_intervals_until_its_answers_change(comparison):
    main(["report", "--out", str(comparison), "--resamples", "50"])
    cache = comparison / "esma_auroc.result.json"
    first = json.loads(cache.read_text())["result"]
    assert first["spelling"]["after"]["accuracy"]["value"] == pytest.approx(20 / 90)

    # Re-evaluated: 20 more spelling answers wrong. The cached numbers must not be reused.
    _write(
        comparison / "esma_auroc.spelling.jsonl", _rows("spelling", 90, seed=1, informed=False, drop_right=20)
    )
    main(["report", "--out", str(comparison), "--resamples", "50"])
    second = json.loads((comparison / "results.json").read_text())["arms"][0]
    assert second["spelling"]["after"]["accuracy"]["value"] == pytest.approx(10 / 90)
    assert json.loads(cache.read_text())["result"] == second
    assert json.loads(cache.read_text())["key"]["resamples"] == 50  # another number of draws: recomputed


def test_a_p_value_below_the_permutation_floor_reads_as_a_bound():
    cell = {"value": 0.138, "low": 0.086, "high": 0.19, "p_value": 1 / 2001}
    assert fmt(cell) == "+0.138 [+0.086, +0.190] p<0.001"
    assert fmt({**cell, "p_value": 0.0123}).endswith(" p=0.012")
    assert fmt({**cell, "value": None}) == "n/a"
