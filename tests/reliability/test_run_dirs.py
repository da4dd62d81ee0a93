"""Run directories: runs started together get distinct version_N; a run that fails early leaves none."""

import json
from pathlib import Path

from tests.reliability.conftest import eval_args, report_of, run_cli, run_main


def test_three_runs_started_together_get_three_directories_and_print_their_own(
    tmp_path, tiny_model_dir, trivia20
):
    runs = [
        run_cli(
            *eval_args(
                tiny_model_dir,
                tmp_path / "out",
                "--data.init_args.path",
                str(trivia20),
                "--data.init_args.max_samples",
                str(n),
            )
        )
        for n in (3, 4, 5)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    versions = sorted(p.name for p in (tmp_path / "out" / "eval-triviaqa").iterdir())
    assert versions == ["version_0", "version_1", "version_2"]
    for n, (out, _) in zip((3, 4, 5), outputs):
        printed = next(line for line in out.splitlines() if line.startswith("report: "))[len("report: ") :]
        assert (
            json.loads(Path(printed).read_text())["n"] == n
        )  # each run printed its own report, with its own rows
    assert sorted(report_of(tmp_path / "out", version=v)["n"] for v in range(3)) == [3, 4, 5]


def test_a_run_that_fails_before_writing_leaves_no_empty_version(tmp_path, tiny_model_dir, trivia20, capsys):
    code, errors = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path / "out",
            "--data.init_args.path",
            str(trivia20),
            "--model.init_args.evaluation.max_input_tokens",
            "0",
        ),
        capsys,
    )
    assert code == 2 and errors == ["error: evaluation.max_input_tokens: 0 must be >= 1 (tokens)"]
    assert list((tmp_path / "out" / "eval-triviaqa").iterdir()) == []


def test_default_root_dir_is_honoured_and_an_unwritable_one_is_named(
    tmp_path, tiny_model_dir, trivia20, capsys
):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    code, errors = run_main(
        eval_args(tiny_model_dir, blocker / "runs", "--data.init_args.path", str(trivia20)), capsys
    )
    assert code == 2 and errors == [
        (
            f"error: cannot create the run directory {blocker}/runs/eval-triviaqa (Not a directory); set "
            f"trainer.logger.init_args.save_dir (or trainer.default_root_dir) to a writable directory"
        )
    ]


def test_an_explicit_version_holding_a_run_is_refused_unless_overwritten(
    tmp_path, tiny_model_dir, trivia20, capsys
):
    # Issue 32, item 8: a second run with version 0 overwrote the first's report (n 6 -> 20) and left two
    # TensorBoard event files.
    args = eval_args(
        tiny_model_dir,
        tmp_path,
        "--data.init_args.path",
        str(trivia20),
        "--trainer.logger.init_args.version",
        "0",
    )
    assert run_main([*args, "--data.init_args.max_samples", "6"], capsys)[0] == 0
    run = tmp_path / "eval-triviaqa" / "version_0"
    code, errors = run_main(args, capsys)
    assert (code, errors) == (
        2,
        [
            f"error: the run directory {run} (trainer.logger.init_args.version: 0) already holds "
            f"a run; its report, samples and events would be overwritten or mixed: choose "
            f"another version, leave version unset for the next free one, or add "
            f"--overwrite_version true to replace it"
        ],
    )
    assert report_of(tmp_path)["n"] == 6
    assert run_main([*args, "--overwrite_version", "true"], capsys)[0] == 0
    assert report_of(tmp_path)["n"] == 20 and len(list(run.glob("events.out.tfevents.*"))) == 1


def test_a_run_that_fails_after_writing_its_config_leaves_no_directory(
    tmp_path, tiny_model_dir, trivia20, capsys
):
    # Issue 32, item 13: a run failing once Lightning had written config.yaml and an events file kept
    # version_0.
    missing = tmp_path / "no-such-model"
    code, errors = run_main(
        eval_args(missing, tmp_path / "out", "--data.init_args.path", str(trivia20)), capsys
    )
    assert code == 2 and len(errors) == 1 and str(missing) in errors[0]
    assert list((tmp_path / "out" / "eval-triviaqa").iterdir()) == []
