"""The command line: every shipped config parses; bad input gives one line naming the cause and the fix."""

import subprocess
import sys
from pathlib import Path

import pytest

from metalight.cli import condense_parser_error, main

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p.relative_to(ROOT) for p in (ROOT / "configs").rglob("*.yaml")
                 if "strategy" not in p.parts and p.parent.name not in {"model", "data", "sweeps"})


def run_cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "cli.py", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_every_experiment_config_parses(config, capsys):
    subcommand = "validate" if "eval" in config.parts or config.name == "quickstart.yaml" else "fit"
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--config", str(ROOT / config), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path" in capsys.readouterr().out


def test_unknown_config_key_is_one_line_naming_key_and_fix(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  init_args:\n    sigmaa: 3\n")
    result = run_cli("validate", "--config", "configs/quickstart.yaml", "--config", str(bad))
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "model.init_args.sigmaa" in error_lines[0] and "--print_config" in error_lines[0]
    assert "usage:" not in result.stderr


def test_unknown_model_spec_is_one_line(tmp_path):
    result = run_cli("validate", "--config", "configs/quickstart.yaml", "--model.init_args.model",
                     "embedded:nonexistent", "--trainer.logger.init_args.save_dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: unknown embedded model 'nonexistent'; known: embedded:smollm2-135m-instruct")


def test_missing_data_file_is_one_line(tmp_path):
    result = run_cli("validate", "--config", "configs/quickstart.yaml", "--data.init_args.path",
                     str(tmp_path / "missing.json"), "--trainer.logger.init_args.save_dir", str(tmp_path))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data file not found:") and "missing.json" in last


def test_condensed_error_for_a_bad_choice():
    message = ('Parser key "model":\n  Errors:\n    - Problem with given class_path \'x.M\':\n'
               '        Parser key "evaluation.grading":\n          Expected a Literal. Got value: fuzzy\n')
    assert condense_parser_error(message) == ("config key 'model.init_args.evaluation.grading' of x.M: "
                                              "Expected a Literal. Got value: fuzzy")


def test_evaluation_settings_that_cannot_work_are_one_line(tmp_path):
    result = run_cli("validate", "--config", "configs/quickstart.yaml", "--model.init_args.evaluation.decoder",
                     "compact", "--model.init_args.evaluation.decoding", "model_default",
                     "--model.init_args.evaluation.max_new_tokens", "0",
                     "--trainer.logger.init_args.save_dir", str(tmp_path))
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: evaluation.decoder: compact") and "set decoder: hf or auto" in last
    assert "evaluation.max_new_tokens: 0 must be >= 1" in last and "Traceback" not in result.stderr
