"""PNG figures of a probe run: metric vs layer per axis (probes, report, control), learning curve,
steering."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from metalight.methods.probes.experiments.common import ProbeRun
from metalight.methods.probes.scores import probe_metrics
from metalight.report.plots import figure_label


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure(*args, **kwargs):
    """``plt.subplots`` whose layout makes room for titles, which wrap at the figure's edges."""
    fig, panels = _pyplot().subplots(*args, layout="constrained", **kwargs)
    for panel in fig.axes:
        panel.title.set_wrap(True)
    return fig, panels


def _save(fig, path: Path, writer=None) -> Path:
    """Write ``fig`` as PNG (and, given a TensorBoard ``writer``, as image ``figures/<stem>``), then close
    it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    if writer is not None:
        writer.add_figure(f"figures/{path.stem}", fig, close=False)
    _pyplot().close(fig)
    return path


def heldout_probe_metrics(run: ProbeRun) -> dict[str, torch.Tensor]:
    """Accuracy and AUROC ``[L, A]`` of the probes on the run's held-out examples (val + test)."""
    scores = torch.stack([e.scores for e in run.examples])
    return probe_metrics(scores, torch.tensor([e.label for e in run.examples]))


def plot_probes(run: ProbeRun, out: Path, writer=None) -> Path:
    """Held-out probe accuracy and AUROC vs layer, one line per axis."""
    values = heldout_probe_metrics(run)
    fig, panels = _figure(1, 2, figsize=(11, 4), sharex=True)
    for panel, name in zip(panels, ("accuracy", "auroc")):
        for ai, axis in enumerate(run.probes.axes):
            panel.plot(
                run.probes.layers,
                values[name][:, ai].tolist(),
                marker="o",
                ms=3,
                label=axis,
                lw=2.2 if axis == "lr" else 1,
            )
        panel.axhline(0.5, color="grey", ls="--", lw=0.8)
        panel.set(xlabel="layer", ylabel=f"held-out {name}", title=f"probe {name} (n={len(run.examples)})")
    panels[1].legend(fontsize=7, ncol=2)
    return _save(fig, out / "probe_accuracy.png", writer)


def _by_axis(results: list[dict[str, Any]], value: str, **where) -> dict[str, tuple[list[int], list[float]]]:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for r in results:
        if all(r[k] == v for k, v in where.items()):
            series[r["axis"]].append((r["layer"], r[value]))
    return {axis: tuple(map(list, zip(*sorted(points)))) for axis, points in series.items()}


def plot_report(report: dict[str, Any], out: Path, writer=None) -> list[Path]:
    """Report accuracy vs layer per axis (with the majority baseline), and accuracy by in-context position."""
    results = report["results"]
    fig, panel = _figure(figsize=(6, 4))
    for axis, (layers, acc) in _by_axis(results, "accuracy").items():
        panel.plot(layers, acc, marker="o", label=axis)
    panel.plot(
        *next(iter(_by_axis(results, "majority_baseline").values())),
        color="grey",
        ls="--",
        label="majority baseline",
    )
    panel.set(
        xlabel="layer", ylabel="report accuracy", title=f"report: {figure_label(report['settings']['model'])}"
    )
    panel.legend(fontsize=7)
    paths = [_save(fig, out / f"{report['name']}_accuracy.png", writer)]
    fig, panel = _figure(figsize=(6, 4))
    for r in results:
        curve = torch.tensor(r["curve"]["accuracy"])
        window = max(1, len(curve) // 10)
        smooth = torch.nn.functional.avg_pool1d(curve[None, None], window, 1).flatten()
        panel.plot(range(window, len(curve) + 1), smooth.tolist(), label=f"L{r['layer']} {r['axis']}", lw=1)
    panel.axhline(0.5, color="grey", ls="--", lw=0.8)
    panel.set(
        xlabel="in-context position (examples seen + 1)",
        ylabel=f"accuracy (running mean, {window})",
        title="report learning curve",
    )
    panel.legend(fontsize=6, ncol=2)
    paths.append(_save(fig, out / f"{report['name']}_curve.png", writer))
    return paths


def plot_control(control: dict[str, Any], out: Path, writer=None) -> list[Path]:
    """Cohen's d vs layer per axis at the largest N (one panel per mode), and d vs N per (layer, axis)."""
    results = control["results"]
    modes = sorted({r["mode"] for r in results})
    n_max = max(r["n_examples"] for r in results)
    # One y scale for every mode, and the 95% CIs drawn: a near-zero "inactive" panel must look like one.
    fig, panels = _figure(1, len(modes), figsize=(5.5 * len(modes), 4), squeeze=False, sharey=True)
    for panel, mode in zip(panels[0], modes):
        for axis, (layers, d) in _by_axis(results, "d", mode=mode, n_examples=n_max).items():
            _, ci = _by_axis(results, "ci95", mode=mode, n_examples=n_max)[axis]
            panel.errorbar(layers, d, yerr=ci, marker="o", capsize=3, label=axis)
        panel.axhline(0, color="grey", ls="--", lw=0.8)
        panel.set(
            xlabel="layer", ylabel="Cohen's d (target high vs low)", title=f"control, {mode}, N={n_max}"
        )
        panel.legend(fontsize=7)
    paths = [_save(fig, out / "control_d_by_layer.png", writer)]
    fig, panels = _figure(1, len(modes), figsize=(5.5 * len(modes), 4), squeeze=False, sharey=True)
    for panel, mode in zip(panels[0], modes):
        series: dict[tuple, list] = defaultdict(list)
        for r in results:
            if r["mode"] == mode:
                series[(r["layer"], r["axis"])].append((r["n_examples"], r["d"], r["ci95"]))
        for (layer, axis), points in sorted(series.items()):
            ns, ds, cis = zip(*sorted(points))
            panel.errorbar(
                [str(n) for n in ns], ds, yerr=cis, marker="o", capsize=3, label=f"L{layer} {axis}"
            )
        panel.axhline(0, color="grey", ls="--", lw=0.8)
        panel.set(xlabel="in-context examples N", ylabel="Cohen's d (± 95% CI)", title=f"control, {mode}")
        panel.legend(fontsize=6, ncol=2)
    paths.append(_save(fig, out / "control_d_by_n.png", writer))
    return paths


def plot_steering(steering: dict[str, Any], out: Path, writer=None) -> Path:
    """Mean re-read score vs steering α, one line per (layer, axis)."""
    fig, panel = _figure(figsize=(6, 4))
    for r in steering["results"]:
        alphas = [a["alpha"] for a in r["alphas"]]
        panel.plot(
            alphas, [a["mean_score"] for a in r["alphas"]], marker="o", label=f"L{r['layer']} {r['axis']}"
        )
    panel.set(
        xlabel="steering α (axis train std)", ylabel="re-read score (unsteered)", title="steering check"
    )
    panel.legend(fontsize=7)
    return _save(fig, out / "steering.png", writer)


def plot_run(run_path: str | Path, writer=None) -> list[Path]:
    """Every figure whose inputs exist in ``<run>/neurofeedback`` (plus the probe figure); each also goes to
    the TensorBoard ``writer`` when one is given."""
    run = ProbeRun.load(run_path)
    out = run.output_dir()
    paths = [plot_probes(run, out, writer)]
    for file in sorted(out.glob("*.json")):
        data = json.loads(file.read_text())
        kind = data.get("experiment")
        if kind in ("report", "predexp"):
            paths += plot_report({**data, "name": file.stem}, out, writer)
        elif kind == "control":
            paths += plot_control(data, out, writer)
        elif kind == "steering":
            paths.append(plot_steering(data, out, writer))
    return paths
