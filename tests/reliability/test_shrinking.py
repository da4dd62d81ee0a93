"""No silent shrinking: a single file is evaluated whole under validate, caps < 1 are refused, skipped,
truncated and API-failed rows are counted in report.json and the printed summary, and n = 0 is an error."""

import pytest

from metalight.data.sources.triviaqa import TriviaQADataModule
from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings, evaluate_records
from metalight.methods.evaluation import row_counts
from tests.reliability.conftest import ROOT, eval_args, report_of, run_main


def test_the_readme_single_file_example_evaluates_every_row(tmp_path, tiny_model_dir, trivia20, capsys):
    # README: python cli.py validate --config configs/eval/triviaqa.yaml --data.init_args.path FILE.jsonl
    code, errors = run_main(
        eval_args(tiny_model_dir, tmp_path, "--data.init_args.path", str(trivia20)), capsys
    )
    assert code == 0 and errors == []
    report = report_of(tmp_path)
    assert report["n"] == 20 and report["rows_read"] == 20 and report["evaluated_rows"] == 20
    assert report["split_rule"] == "whole file: every row (eval_split)"


def test_the_held_out_slice_is_stated_with_its_counts(tmp_path, tiny_model_dir, trivia20, capsys):
    code, _ = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path,
            "--data.init_args.path",
            str(trivia20),
            "--data.init_args.eval_split",
            "held_out",
        ),
        capsys,
    )
    report = report_of(tmp_path)
    assert code == 0 and report["n"] == 2 and report["rows_read"] == 20
    assert report["split_rule"].startswith("held-out slice of one file: val_fraction 0.1")
    assert "\nrows: 2 evaluated of 20 read (held-out slice of one file" in run_main.out


def test_the_printed_summary_states_the_rows(tmp_path, tiny_model_dir, trivia20, capsys):
    run_main(
        eval_args(
            tiny_model_dir,
            tmp_path,
            "--data.init_args.path",
            str(trivia20),
            "--data.init_args.max_samples",
            "5",
        ),
        capsys,
    )
    line = next(x for x in run_main.out.splitlines() if x.startswith("rows: "))
    assert line == (
        "rows: 5 evaluated of 20 read (whole file: every row (eval_split)); 0 skipped as malformed; "
        "0 prompts truncated; 0 suspect matches; capped at max_samples from 20"
    )


@pytest.mark.parametrize("cap", [-1, 0])
def test_max_samples_below_one_is_refused(cap, tmp_path, tiny_model_dir, trivia20, capsys):
    code, errors = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path,
            "--data.init_args.path",
            str(trivia20),
            "--data.init_args.max_samples",
            str(cap),
        ),
        capsys,
    )
    assert code == 2 and errors == [
        (
            f"error: TriviaQADataModule: max_samples: {cap} must be >= 1 (rows per split); "
            f"leave it unset (null) to keep every row"
        )
    ]
    with pytest.raises(ConfigError, match=r"max_samples.val: 0 must be >= 1"):
        TriviaQADataModule(path=str(trivia20), max_samples={"val": 0})


def test_strict_false_skips_an_invalid_json_row_and_counts_it(tmp_path, tiny_model_dir, trivia20, capsys):
    lines = trivia20.read_text().splitlines()
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines[:3] + ['{"question": broken'] + lines[3:6]) + "\n")
    code, errors = run_main(
        eval_args(tiny_model_dir, tmp_path / "strict", "--data.init_args.path", str(broken)), capsys
    )
    assert code == 2 and errors == [f"error: {broken}:4: not valid JSON (Expecting value at column 14)"]
    code, _ = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path / "loose",
            "--data.init_args.path",
            str(broken),
            "--data.init_args.strict",
            "false",
        ),
        capsys,
    )
    report = report_of(tmp_path / "loose")
    assert code == 0 and report["n"] == 6 and report["rows_read"] == 7 and report["skipped_rows"] == 1


def test_a_truncated_prompt_is_counted_and_recorded_as_sent(tiny):
    model, tokenizer = tiny
    from metalight.data.records import QARecord

    records = [
        QARecord("short", "Capital of France?", ["Paris"]),
        QARecord("long", "Please consider this: " + "very " * 200 + "long question?", ["x"]),
    ]
    results = evaluate_records(model, tokenizer, records, EvalSettings(max_new_tokens=2, max_input_tokens=64))
    assert [r.prompt_truncated for r in results] == [False, True]
    assert len(tokenizer(results[1].direct_prompt, add_special_tokens=False)["input_ids"]) <= 64
    assert "Please consider this" not in results[1].direct_prompt  # the start of the prompt was not sent
    assert row_counts(results)["truncated_rows"] == 1


def test_api_failed_rows_are_counted_and_zero_rows_is_an_error(chat_server, tmp_path, capsys):
    from tests.methods.evaluators.conftest import trivia_data_args

    files = {"val": str(tmp_path / "val.jsonl")}
    (tmp_path / "val.jsonl").write_text((ROOT / "tests/data/fixtures/triviaqa_native_rows.jsonl").read_text())
    args = [
        "validate",
        "--config",
        str(ROOT / "configs/eval/api.yaml"),
        "--model.init_args.endpoint.base_url",
        chat_server.base_url,
        "--model.init_args.endpoint.model",
        "m",
        "--model.init_args.endpoint.api_key_env",
        "METALIGHT_TEST_KEY",
        "--model.init_args.endpoint.max_retries",
        "0",
        "--model.init_args.cache_path",
        str(tmp_path / "cache.jsonl"),
        "--model.init_args.on_failure",
        "skip",
        "--model.init_args.sources",
        "[meta]",
        "--trainer.default_root_dir",
        str(tmp_path / "runs"),
        "--trainer.enable_progress_bar",
        "false",
        "--report.plots",
        "false",
        *trivia_data_args(files, batch=2),
    ]
    chat_server.script = ["400"]  # the first question's direct prompt fails: that row is left out and counted
    code, _ = run_main(args, capsys)
    report = report_of(tmp_path / "runs", "eval-api")
    assert code == 0 and report["api_failed"] == 1 and report["n"] == 1
    assert "; 1 API-failed;" in run_main.out
    chat_server.default = "400"  # every request fails: nothing is left to measure
    code, errors = run_main([*args, "--model.init_args.cache_path", str(tmp_path / "other.jsonl")], capsys)
    assert code == 2 and errors == [
        (
            "error: the val pass evaluated no rows (n = 0): check the data source, "
            "max_samples, limit_val_batches and (API models) on_failure"
        )
    ]
