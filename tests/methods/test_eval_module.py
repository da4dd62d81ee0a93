"""End to end: `cli.py validate` measures a model and writes report.json, samples and TensorBoard events."""

import json
import math

import pytest

from metalight.cli import main
from metalight.io import read_jsonl
from tests.report_keys import assert_report_keys

REPORT_KEYS = {
    "n",
    "accuracy",
    "dprime_type2",
    "hit_rate",
    "false_alarm_rate",
    "auroc_type2",
    "raw_alignment",
    "yes_ratio",
    "rmi",
    "ece",
    "brier",
    "meta_d_prime",
    "m_ratio",
    "meta_unparsed_rate",
}
SETTING_KEYS = {
    "grading",
    "yes_no_rule",
    "dprime_correction",
    "prompt_version",
    "direct_chat_template",
    "meta_chat_template",
    "model",
    "dataset",
    "split",
}


def validate(tmp_path, *extra):
    main(
        [
            "validate",
            "--config",
            "configs/quickstart.yaml",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            *extra,
        ]
    )
    (run,) = (tmp_path / "quickstart").iterdir()
    return run, json.loads((run / "report.json").read_text())


@pytest.mark.embedded
def test_validate_embedded_model_on_20_questions(tmp_path):
    run, report = validate(tmp_path, "--data.init_args.max_samples.val", "20")
    assert set(report) >= REPORT_KEYS | SETTING_KEYS
    assert report["n"] == 20 and report["split"] == "val"
    assert report["accuracy"] > 0
    assert report["model"] == "embedded:smollm2-135m-instruct" and report["dprime_correction"] == "clip"
    for key in ("raw_alignment", "yes_ratio", "ece", "brier", "meta_unparsed_rate"):
        assert 0 <= report[key] <= 1
    samples = read_jsonl(run / "samples" / "val.jsonl")
    assert len(samples) == 20
    assert {"question", "aliases", "direct_answer", "correct", "meta_answer", "said_yes", "p_yes"} <= set(
        samples[0]
    )
    assert sum(s["correct"] for s in samples) / 20 == pytest.approx(report["accuracy"])
    assert list(run.glob("events.out.tfevents.*")) and (run / "config.yaml").is_file()


def test_validate_tiny_model_with_settings_recorded(tmp_path, tiny_model_dir):
    _, report = validate(
        tmp_path,
        "--model.init_args.model",
        str(tiny_model_dir),
        "--data.init_args.max_samples.val",
        "6",
        "--model.init_args.evaluation.max_new_tokens",
        "3",
        "--model.init_args.evaluation.grading",
        "normalized",
        "--model.init_args.dprime_correction",
        "loglinear",
    )
    assert (
        report["n"] == 6 and report["grading"] == "normalized" and report["dprime_correction"] == "loglinear"
    )
    assert report["max_new_tokens"] == 3 and report["meta_chat_template_used"] is False
    assert not math.isnan(report["yes_ratio"])
    assert_report_keys(report, "eval")
