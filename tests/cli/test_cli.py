"""The command line: every shipped config parses; bad input gives one line naming the cause and the fix."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from metalight.cli import condense_parser_error, main

ROOT = Path(__file__).resolve().parents[2]
# Fragments compose onto an experiment; sweeps are read by metalight.cli.multirun; each kind has a parse test.
FRAGMENT_DIRS = {"data", "model", "strategy"}
CONFIGS = sorted(
    p.relative_to(ROOT)
    for p in (ROOT / "configs").rglob("*.yaml")
    if p.relative_to(ROOT / "configs").parts[0] not in FRAGMENT_DIRS | {"sweeps"}
)
MODEL_FRAGMENTS = sorted((ROOT / "configs" / "model").glob("*.yaml"))


def run_cli(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "cli.py", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize("config", CONFIGS, ids=str)
def test_every_experiment_config_parses(config, capsys):
    subcommand = "validate" if "eval" in config.parts or config.name == "quickstart.yaml" else "fit"
    with pytest.raises(SystemExit) as exit_info:
        main([subcommand, "--config", str(ROOT / config), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path" in capsys.readouterr().out


def assert_contains(printed, expected, where: str) -> None:
    """Every key of ``expected`` (a config fragment) reaches ``printed`` with its value."""
    for key, value in expected.items():
        assert key in printed, f"{where}.{key} missing from --print_config"
        if isinstance(value, dict):
            assert_contains(printed[key], value, f"{where}.{key}")
        else:
            assert printed[key] == value, f"{where}.{key}: {printed[key]!r} != {value!r}"


@pytest.mark.parametrize("fragment", MODEL_FRAGMENTS, ids=lambda p: p.name)
def test_model_fragment_composes_with_an_experiment(fragment, composed_config):
    assert_contains(composed_config(fragment), yaml.safe_load(fragment.read_text()), "config")


def test_every_config_has_a_parse_test():
    from tests.cli.test_multirun import SWEEPS
    from tests.data.test_configs import FRAGMENTS as DATA_FRAGMENTS
    from tests.test_strategies import FRAGMENTS as STRATEGY_FRAGMENTS

    parsed = {ROOT / c for c in CONFIGS} | {*MODEL_FRAGMENTS, *DATA_FRAGMENTS, *STRATEGY_FRAGMENTS, *SWEEPS}
    # A nested folder under a fragment directory or a .yml file would otherwise go unparsed.
    unparsed = set((ROOT / "configs").rglob("*.y*ml")) - parsed
    assert not unparsed, f"no test parses {sorted(str(p.relative_to(ROOT)) for p in unparsed)}"
    assert MODEL_FRAGMENTS and SWEEPS


def test_unknown_config_key_is_one_line_naming_key_and_fix(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  init_args:\n    sigmaa: 3\n")
    result = run_cli("validate", "--config", "configs/quickstart.yaml", "--config", str(bad))
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert (
        len(error_lines) == 1
        and "model.init_args.sigmaa" in error_lines[0]
        and "--print_config" in error_lines[0]
    )
    assert "usage:" not in result.stderr


def test_unknown_model_spec_is_one_line(tmp_path):
    result = run_cli(
        "validate",
        "--config",
        "configs/quickstart.yaml",
        "--model.init_args.model",
        "embedded:nonexistent",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: unknown embedded model 'nonexistent'; known: embedded:smollm2-135m-instruct"
    )


def test_missing_data_file_is_one_line(tmp_path):
    result = run_cli(
        "validate",
        "--config",
        "configs/quickstart.yaml",
        "--data.init_args.path",
        str(tmp_path / "missing.json"),
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: data file not found:") and "missing.json" in last


def test_condensed_error_for_a_bad_choice():
    message = (
        "Parser key \"model\":\n  Errors:\n    - Problem with given class_path 'x.M':\n"
        '        Parser key "evaluation.grading":\n          Expected a Literal. Got value: fuzzy\n'
    )
    assert condense_parser_error(message) == (
        "config key 'model.init_args.evaluation.grading' of x.M: Expected a Literal. Got value: fuzzy"
    )


def test_evaluation_settings_that_cannot_work_are_one_line(tmp_path):
    result = run_cli(
        "validate",
        "--config",
        "configs/quickstart.yaml",
        "--model.init_args.evaluation.decoder",
        "compact",
        "--model.init_args.evaluation.decoding",
        "model_default",
        "--model.init_args.evaluation.max_new_tokens",
        "0",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
    )
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: evaluation.decoder: compact") and "set decoder: hf or auto" in last
    assert "evaluation.max_new_tokens: 0 must be >= 1" in last and "Traceback" not in result.stderr
