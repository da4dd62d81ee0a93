"""End to end through cli.py on the tiny model: confidence sources, IDK, and the val -> test threshold
command."""

import json
import math

import numpy as np
import pytest
from matplotlib.image import imread

from metalight.cli import main
from metalight.cli.evaluate import main as evaluate_main
from metalight.io import read_jsonl
from tests.methods.evaluators.conftest import trivia_data_args
from tests.report_keys import assert_report_keys

TINY = ["--model.init_args.evaluation.max_new_tokens", "3", "--trainer.enable_progress_bar", "false"]


def assert_png(path):
    """A real, non-blank PNG image."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 200 and float(np.std(image)) > 0.01


def _run(tmp_path, config, *args, command="validate"):
    cli = main(
        [
            command,
            "--config",
            config,
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
            *TINY,
            *args,
        ]
    )
    run = cli.trainer.log_dir
    return run, json.loads(open(f"{run}/report.json").read())


def test_every_source_is_reported_with_thresholds_samples_and_plots(tmp_path, tiny_model_dir, trivia_files):
    run, report = _run(
        tmp_path,
        "configs/eval/sources.yaml",
        "--model.init_args.model",
        str(tiny_model_dir),
        *trivia_data_args(trivia_files),
    )
    sources = ["p_yes", "meta", "idk", "max_seq_prob", "mean_token_entropy", "p_true", "verbalized"]
    assert report["n"] == 6 and report["confidence_sources"] == sources
    assert_report_keys(report, "confidence_sources")
    for source in sources:
        assert f"{source}/auroc_type2" in report and f"{source}/prr" in report
    assert {"idk/abstention_rate", "idk/answered_accuracy", "idk/prompt_accuracy"} <= set(report)
    assert report["thresholds"]["max_seq_prob"]["selected_on"] == "val"
    assert report["confidence_prompt_version"] == "conf-v1" and report["threshold_criterion"] == "youden"
    samples = read_jsonl(f"{run}/samples/val.jsonl")
    assert len(samples) == 6 and set(samples[0]["confidence"]) == set(sources)
    assert "direct_completion_ids" not in samples[0] and "idk_answer" in samples[0]["extras"]
    for name in ("type2_roc", "reliability", "confidence_hist"):
        assert_png(tmp_path / "runs" / "eval-sources" / "version_0" / "plots" / f"val_{name}.png")


def test_idk_protocol_scores_the_idk_answer_itself(tmp_path, tiny_model_dir, trivia_files):
    run, report = _run(
        tmp_path,
        "configs/eval/idk.yaml",
        "--model.init_args.model",
        str(tiny_model_dir),
        *trivia_data_args(trivia_files),
    )
    samples = read_jsonl(f"{run}/samples/val.jsonl")
    assert report["protocol"] == "idk" and report["n"] == 6
    assert_report_keys(report, "idk")
    assert all("don't know" in s["direct_prompt"] for s in samples)
    answered = [s for s in samples if s["said_yes"]]
    assert report["abstention_rate"] == pytest.approx(1 - len(answered) / 6)
    if answered:
        assert report["answered_accuracy"] == pytest.approx(
            sum(s["correct"] for s in answered) / len(answered)
        )
    assert report["yes_ratio"] == pytest.approx(len(answered) / 6)


def test_threshold_command_chooses_on_val_and_applies_to_test(tmp_path, tiny_model_dir, trivia_files, capsys):
    code = evaluate_main(
        [
            "threshold",
            "--config",
            "configs/eval/threshold.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
            *TINY,
            *trivia_data_args(trivia_files),
        ]
    )
    assert code == 0
    val = json.loads((tmp_path / "runs/eval-threshold/version_0/report.json").read_text())
    test_dir = tmp_path / "runs/eval-threshold/version_1"
    test = json.loads((test_dir / "report.json").read_text())
    assert val["split"] == "val" and test["split"] == "test" and test["n"] == 4
    assert_report_keys(val, "threshold_val")
    assert_report_keys(test, "threshold_test")
    assert test["thresholds"]["p_yes"]["threshold"] == val["thresholds"]["p_yes"]["threshold"]
    assert test["thresholds"]["p_yes"]["selected_on"] == "val"
    assert test["meta_readout"] == "logits" and not math.isnan(test["p_yes/threshold_coverage"])
    out = capsys.readouterr().out
    assert "threshold chosen on val" in out and "| p_yes |" in out
    assert (test_dir / "threshold_summary.md").read_text().count("| p_yes |") == 2


@pytest.mark.embedded
def test_embedded_model_gets_a_score_from_every_logit_source(tmp_path, trivia_files):
    run, report = _run(
        tmp_path,
        "configs/eval/sources.yaml",
        "--model.init_args.evaluation.max_new_tokens",
        "8",
        "--report.plots",
        "false",
        *trivia_data_args(trivia_files, batch=6),
    )
    assert report["n"] == 6 and report["model"] == "embedded:smollm2-135m-instruct"
    for source in ("p_yes", "max_seq_prob", "mean_token_entropy", "p_true"):
        assert report[f"{source}/scored_rate"] == 1.0, source
    samples = read_jsonl(f"{run}/samples/val.jsonl")
    assert all(0 < s["confidence"]["p_true"] < 1 and s["confidence"]["max_seq_prob"] < 0 for s in samples)
    assert all(isinstance(s["extras"]["verbalized_reply"], str) for s in samples)
