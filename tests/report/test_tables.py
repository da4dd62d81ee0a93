"""`python -m metalight.report compare`: run resolution, the side-by-side table, the plot, one-line errors."""

import json

import pytest

from metalight.errors import ConfigError
from metalight.report.__main__ import main
from metalight.report.runs import resolve_report
from metalight.report.tables import load_reports, markdown_table, sources_table

BASE = {
    "n": 200,
    "accuracy": 0.31,
    "dprime_type2": 0.42,
    "auroc_type2": 0.61,
    "prr": 0.12,
    "ece": float("nan"),
    "model": "embedded:smollm2-135m-instruct",
    "dataset": "FanOutQA",
    "split": "val",
    "step": 0,
    "grading": "esma",
    "language": "en",
    "confidence_sources": ["p_yes", "p_true"],
    "p_yes/auroc_type2": 0.61,
    "p_yes/prr": 0.12,
    "p_true/auroc_type2": 0.55,
    "p_true/prr": 0.05,
    "thresholds": {"p_yes": {"threshold": 0.4}},
}


def _write(root, experiment, version, report):
    run = root / experiment / f"version_{version}"
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(report))
    return run


def test_runs_resolve_to_reports_and_the_newest_version(tmp_path):
    _write(tmp_path, "a", 0, BASE)
    newest = _write(tmp_path, "a", 10, BASE)
    _write(tmp_path, "a", 2, BASE)
    assert resolve_report(tmp_path / "a") == newest / "report.json"
    assert resolve_report(newest) == newest / "report.json"
    assert resolve_report(newest / "report.json") == newest / "report.json"
    with pytest.raises(ConfigError, match="no report.json"):
        resolve_report(tmp_path / "nothing")


def test_table_has_metrics_then_the_settings_that_differ():
    other = {**BASE, "accuracy": 0.35, "grading": "normalized", "model": "runs/esma/hf"}
    table = markdown_table({"base": BASE, "esma": other})
    lines = table.splitlines()
    assert lines[0] == "| metric | base | esma |"
    assert "| accuracy | 0.3100 | 0.3500 |" in lines and "| ece | n/a | n/a |" in lines
    assert "| p_true/auroc_type2 | 0.5500 | 0.5500 |" in lines
    assert (
        "| *grading* | esma | normalized |" in lines
        and "| *model* | embedded:smollm2-135m-instruct | runs/esma/hf |" in lines
    )
    assert not any(line.startswith("| *language*") for line in lines)  # equal in both runs
    assert not any("thresholds" in line for line in lines)


def test_sources_table_has_one_row_per_source():
    table = sources_table(BASE)
    assert table.splitlines()[2].startswith("| P(yes) | 0.6100 | 0.1200 |")
    assert table.splitlines()[3].startswith("| p(True) | 0.5500 | 0.0500 |")


def test_compare_command_prints_the_table_and_writes_the_plot(tmp_path, capsys):
    a = _write(tmp_path, "base", 0, BASE)
    b = _write(tmp_path, "esma", 0, {**BASE, "accuracy": 0.4})
    assert (
        main(
            [
                "compare",
                str(a),
                str(b),
                "--out",
                str(tmp_path / "cmp.png"),
                "--markdown",
                str(tmp_path / "cmp.md"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "| metric | base/version_0 | esma/version_0 |" in out and "| accuracy | 0.3100 | 0.4000 |" in out
    assert (tmp_path / "cmp.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "cmp.md").read_text().startswith("| metric |")
    assert main(["compare", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("error: no report.json at")


def test_names_must_match_the_runs(tmp_path):
    a = _write(tmp_path, "base", 0, BASE)
    assert list(load_reports([a], ["mine"])) == ["mine"]
    with pytest.raises(ConfigError, match="one name per run"):
        load_reports([a], ["x", "y"])
