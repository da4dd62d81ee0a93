"""Run plots: every figure is drawn from samples rows, written as a real PNG, and its ROC matches AUROC2."""

import math

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from metalight.metrics import type2_auroc
from metalight.report.plots import (
    _roc_points,
    columns_from_samples,
    compare_figure,
    report_label,
    run_figures,
    save_png,
)
from tests.report.figure_checks import texts_outside


def _samples(n=60, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        correct = bool(rng.random() < 0.4)
        p = float(np.clip(rng.normal(0.65 if correct else 0.4, 0.15), 0, 1))
        rows.append(
            {
                "correct": correct,
                "p_yes": p,
                "confidence": {
                    "p_yes": p,
                    "meta": float(p > 0.5),
                    "max_seq_prob": float(np.log(p + 1e-3) * 5),
                    "verbalized": math.nan if i % 7 == 0 else round(p, 1),
                },
                "reports": {"p_yes": p > 0.5, "meta": p > 0.5, "max_seq_prob": None, "verbalized": p > 0.5},
            }
        )
    return rows


def _assert_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200 and float(np.std(image)) > 0.01


def test_every_run_figure_is_written_as_a_non_blank_png(tmp_path):
    history = [
        {
            "step": s,
            "n": 60,
            "accuracy": 0.3 + 0.01 * s,
            "dprime_type2": 0.1 * s,
            "auroc_type2": 0.6,
            "raw_alignment": 0.5,
            "ece": 0.2,
            "prr": 0.1,
        }
        for s in (0, 10, 20)
    ]
    figures = run_figures(_samples(), history, label="tiny · val")
    assert set(figures) == {"type2_roc", "reliability", "confidence_hist", "metric_curves"}
    for name, figure in figures.items():
        _assert_png(save_png(figure, tmp_path / f"{name}.png"))


LONG_LABEL = report_label(
    {
        "model": "/home/user/checkpoints/Qwen2.5-1.5B-Instruct-esma/hf",
        "step": 1200,
        "dataset": "FanOutQASingleHopDataModule(/usr/lib/fanoutqa/fanout-final-dev.json)",
    },
    "val",
)


@pytest.mark.parametrize("sources", ["p_yes", "all"])
def test_every_title_and_label_fits_its_figure(sources):
    rows = _samples()
    if sources == "p_yes":  # one probability source: the narrowest figures
        rows = [
            {"correct": r["correct"], "p_yes": r["p_yes"], "confidence": {"p_yes": r["p_yes"]}} for r in rows
        ]
    history = [{"step": s, "n": 60, "accuracy": 0.3, "ece": 0.2} for s in (0, 10)]
    figures = {
        **run_figures(rows, history, label=LONG_LABEL),
        "compare": compare_figure({"base": {"accuracy": 0.3}}, ["accuracy"]),
    }
    for name, figure in figures.items():
        assert not texts_outside(figure), name


def test_columns_skip_sources_without_scores_and_keep_reports():
    rows = _samples(10)
    for row in rows:
        row["p_yes"] = math.nan
        row["confidence"]["p_yes"] = math.nan
    columns = {c.name: c for c in columns_from_samples(rows)}
    assert set(columns) == {"meta", "max_seq_prob", "verbalized"}
    assert columns["max_seq_prob"].report is None and columns["meta"].report is not None
    assert columns["verbalized"].scored.sum() == 8  # rows 0 and 7 have no stated probability


def test_roc_points_integrate_to_the_type2_auroc_with_ties():
    rows = _samples(80, seed=3)
    correct = np.array([r["correct"] for r in rows])
    score = np.round(np.array([r["p_yes"] for r in rows]), 1)  # many ties
    f, h = _roc_points(correct, score)
    area = float(np.sum(np.diff(f) * (h[1:] + h[:-1]) / 2))
    assert (f[0], h[0], f[-1], h[-1]) == (0, 0, 1, 1)
    assert area == pytest.approx(type2_auroc(torch.tensor(correct), torch.tensor(score)).item(), abs=1e-6)


def test_an_evaluation_without_probabilities_has_no_reliability_diagram():
    rows = [
        {
            "correct": i % 2 == 0,
            "p_yes": math.nan,
            "confidence": {"idk": float(i % 3 != 0)},
            "reports": {"idk": i % 3 != 0},
        }
        for i in range(12)
    ]
    assert set(run_figures(rows)) == {"type2_roc", "confidence_hist"}


def test_comparison_figure_draws_missing_values_as_gaps(tmp_path):
    reports = {
        "base": {"accuracy": 0.3, "dprime_type2": 0.2},
        "esma": {"accuracy": 0.31, "dprime_type2": math.nan},
    }
    _assert_png(save_png(compare_figure(reports, ["accuracy", "dprime_type2"]), tmp_path / "cmp.png"))


def test_figure_titles_shorten_paths_and_wrap():
    from metalight.report.plots import figure_label

    label = figure_label(
        "m · FanOutQA(/usr/lib/python3.11/site-packages/fanoutqa/data/dev.json) · val (step 0)", 30
    )
    assert "FanOutQA(dev.json)" in label and "/usr" not in label
    assert all(len(line) <= 30 for line in label.splitlines())
    shortened = figure_label("runs/esma/hf/ · Qwen/Qwen2.5-1.5B · embedded:smollm2")
    assert shortened == "esma/hf · Qwen/Qwen2.5-1.5B · embedded:smollm2"  # directories keep two parts
