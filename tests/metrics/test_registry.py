"""The metric registry is the one declaration every reader follows: a real validate run writes every
declared report metric, a toy metric declared by the docs/architecture.md recipe reaches report.json and the
console table, and README's key lists equal the registry's."""

import contextlib
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor
from torchmetrics import Metric

from metalight.metrics import CONFIDENCE_METRIC_NAMES, METRICS, registry, threshold_table
from metalight.metrics._inputs import binary_rows
from metalight.metrics.registry import MetricSpec, metric_names

README = Path(__file__).parents[2] / "README.md"


# ---- the recipe: one torchmetrics class with its functional twin, then one line in the registry ----------
def _yes_when_wrong_update(correct: Tensor, said_yes: Tensor, mask: Tensor | None) -> Tensor:
    correct, said_yes = binary_rows(correct, said_yes, mask)
    return (said_yes & ~correct).sum()


def yes_when_wrong(correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> Tensor:
    """Functional :class:`YesWhenWrong`."""
    return _yes_when_wrong_update(correct, said_yes, mask).double()


class YesWhenWrong(Metric):
    """Number of wrong answers the model claimed to know (a toy metric for the registry recipe)."""

    full_state_update = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.add_state("count", default=torch.tensor(0), dist_reduce_fx="sum")

    def update(self, correct: Tensor, said_yes: Tensor, mask: Tensor | None = None) -> None:
        self.count += _yes_when_wrong_update(correct, said_yes, mask)

    def compute(self) -> Tensor:
        return self.count.double()


TOY = MetricSpec("yes_when_wrong", "yes when wrong", False, yes_when_wrong, table=True)


def test_the_toy_class_and_its_functional_twin_agree():
    correct, said_yes = torch.tensor([1, 0, 0, 1, 0]), torch.tensor([1, 1, 0, 0, 1])
    metric = YesWhenWrong()
    metric.update(correct[:2], said_yes[:2])
    metric.update(correct[2:], said_yes[2:])
    assert metric.compute().item() == yes_when_wrong(correct, said_yes).item() == 2.0


@pytest.fixture(scope="module")
def toy_run(tiny_model_dir, tmp_path_factory):
    """A real `cli.py validate` of the tiny model with the toy metric declared: (report, samples, stdout)."""
    from metalight.cli import main
    from metalight.io import read_jsonl

    save_dir = tmp_path_factory.mktemp("registry_runs")
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.setattr(registry, "METRICS", (*METRICS, TOY))
        main(
            [
                "validate",
                "--config",
                "configs/quickstart.yaml",
                "--trainer.logger.init_args.save_dir",
                str(save_dir),
                "--model.init_args.model",
                str(tiny_model_dir),
                "--data.init_args.max_samples.val",
                "6",
                "--model.init_args.evaluation.max_new_tokens",
                "3",
            ]
        )
    (run,) = (save_dir / "quickstart").iterdir()
    return (
        json.loads((run / "report.json").read_text()),
        read_jsonl(run / "samples" / "val.jsonl"),
        out.getvalue(),
    )


def test_every_declared_report_metric_reaches_report_json(toy_run):
    report, _, _ = toy_run
    declared = [spec.name for spec in METRICS if spec.report]
    missing = [name for name in declared if name not in report]
    assert not missing, f"declared but not in report.json: {missing}"
    # strict JSON: an undefined value (NaN) is written as null
    assert all(report[name] is None or isinstance(report[name], (int, float)) for name in declared)
    assert report["n"] == 6
    assert {"yes_failure_rate", "no_failure_rate"} <= set(declared)  # once left out of report.json


def test_a_metric_declared_by_the_recipe_reaches_the_report_and_the_console_table(toy_run):
    report, samples, printed = toy_run
    assert report["yes_when_wrong"] == sum(s["said_yes"] and not s["correct"] for s in samples)
    assert re.search(r"^yes_when_wrong\s+\d+\.0000$", printed, re.MULTILINE), printed
    assert "yes_when_wrong" not in metric_names()  # the patch ended with the fixture


def _readme_list(pattern: str) -> list[str]:
    match = re.search(pattern + r"\s*`([^`]*)`", README.read_text())
    assert match, f"README.md has no list after {pattern!r}"
    return [name.strip() for name in match.group(1).split(",")]


def test_readme_key_lists_equal_the_registry():
    assert _readme_list(r"`report\.json` keys:") == list(metric_names("report"))
    assert _readme_list(r"`<source>/<key>` for") == list(metric_names("source"))
    assert _readme_list(r"`<source>/threshold_<key>` for") == list(metric_names("threshold"))


def test_per_source_and_threshold_metrics_are_computed_by_the_source_functions():
    assert set(metric_names("source")) <= set(CONFIDENCE_METRIC_NAMES)
    row = threshold_table(torch.tensor([1, 0, 1]), torch.tensor([0.9, 0.2, 0.6]), torch.tensor([0.5]))[0]
    assert set(metric_names("threshold")) <= set(row)


def test_names_and_labels_are_unique_and_each_metric_is_shown_somewhere():
    assert len({spec.name for spec in METRICS}) == len(METRICS)
    assert len({spec.label for spec in METRICS}) == len(METRICS)
    assert all(spec.report or spec.source for spec in METRICS)
