"""Probe-run figures: every title and label stays inside its figure, even for a long model path."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from metalight.methods.probes import plots
from tests.report.figure_checks import texts_outside

MODEL = "/home/user/checkpoints/Qwen2.5-1.5B-Instruct-neurofeedback-with-a-long-run-name/hf"


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """Figures by file name, checked before the real ``_save`` writes and closes them."""
    figures = {}
    save = plots._save

    def check_then_save(fig, path, writer=None):
        figures[path.name] = texts_outside(fig)
        return save(fig, path, writer)

    monkeypatch.setattr(plots, "_save", check_then_save)
    return figures


def test_every_probe_figure_fits_its_titles(drawn, tmp_path):
    results = [
        {
            "axis": a,
            "layer": layer,
            "accuracy": 0.5 + 0.01 * layer,
            "majority_baseline": 0.55,
            "curve": {"accuracy": list(np.linspace(0.4, 0.7, 50))},
        }
        for a in ("lr", "pc1")
        for layer in (7, 14)
    ]
    plots.plot_report({"results": results, "settings": {"model": MODEL}, "name": "report"}, tmp_path)
    control = [
        {"mode": m, "axis": a, "layer": layer, "n_examples": n, "d": 0.1 * layer, "ci95": 0.2}
        for m in ("active", "inactive")
        for a in ("lr", "pc1")
        for layer in (7, 14)
        for n in (4, 16)
    ]
    plots.plot_control({"results": control}, tmp_path)
    plots.plot_steering(
        {
            "results": [
                {"layer": 7, "axis": "lr", "alphas": [{"alpha": a, "mean_score": a} for a in (-2, 0, 2)]}
            ]
        },
        tmp_path,
    )
    examples = [SimpleNamespace(scores=torch.randn(3, 2), label=i % 2) for i in range(20)]
    probes = SimpleNamespace(layers=[7, 14, 21], axes=["lr", "pc1"])
    plots.plot_probes(SimpleNamespace(examples=examples, probes=probes), tmp_path)
    assert set(drawn) == {
        "report_accuracy.png",
        "report_curve.png",
        "control_d_by_layer.png",
        "control_d_by_n.png",
        "steering.png",
        "probe_accuracy.png",
    }
    assert {name: outside for name, outside in drawn.items() if outside} == {}
