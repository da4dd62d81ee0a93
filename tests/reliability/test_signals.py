"""Item 1 of issue 32: SIGTERM no longer reports success. A fit stops at the next step boundary with a
resumable checkpoint (resumed bit-exactly) and exit 143; a validate keeps the rows answered so far and a
partial report."""

import json
import signal

import pytest
import torch

from tests.reliability.conftest import esma_fit_args, eval_args, report_of, run_main, write_trivia

SIGNAL_AT = "--trainer.callbacks+=tests.reliability.signals.SignalAt"


def _weights(path):
    checkpoint = torch.load(path, weights_only=True)
    return checkpoint["global_step"], checkpoint["state_dict"]


def test_sigterm_during_fit_saves_a_resumable_checkpoint_and_exits_143(tmp_path, tiny_model_dir, capsys):
    questions = write_trivia(tmp_path / "q.jsonl")
    code, errors = run_main(
        esma_fit_args(tiny_model_dir, questions, tmp_path / "a", SIGNAL_AT, "--trainer.callbacks.step", "1"),
        capsys,
    )
    last = tmp_path / "a" / "esma-quickstart" / "version_0" / "checkpoints" / "last.ckpt"
    assert (code, errors) == (
        143,
        [
            f"error: stopped by SIGTERM at step 1 (epoch 0), a resumable checkpoint is saved "
            f"as {last}: continue with the same command and --ckpt_path last"
        ],
    )
    assert _weights(last)[0] == 1
    assert (
        run_main(esma_fit_args(tiny_model_dir, questions, tmp_path / "a", "--ckpt_path", "last"), capsys)[0]
        == 0
    )
    assert run_main(esma_fit_args(tiny_model_dir, questions, tmp_path / "b"), capsys)[0] == 0
    (resumed,) = (tmp_path / "a" / "esma-quickstart" / "version_1").rglob("*.ckpt")
    (straight,) = (tmp_path / "b").rglob("*.ckpt")
    (step_a, a), (step_b, b) = _weights(resumed), _weights(straight)
    assert step_a == step_b == 2 and a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture
def restore_sigint():
    """Python's Ctrl-C handler for the test, this process's own afterwards: a test process started in the
    background by a non-interactive shell (``make test &``) inherits SIGINT ignored, and Lightning ignores
    SIGINT after a Ctrl-C (against repeated presses)."""
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("name, exit_code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_during_validate_keeps_the_answered_rows_in_a_partial_report(
    name, exit_code, tmp_path, tiny_model_dir, trivia20, capsys, restore_sigint
):
    code, errors = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path,
            "--data.init_args.path",
            str(trivia20),
            "--data.init_args.eval_batch_size",
            "4",
            SIGNAL_AT,
            "--trainer.callbacks.signal_name",
            name,
            "--trainer.callbacks.batch",
            "1",
        ),
        capsys,
    )
    run = tmp_path / "eval-triviaqa" / "version_0"
    assert (code, errors) == (
        exit_code,
        [
            f"error: stopped by {name} after 8 of 20 rows: their answers are in "
            f"{run}/samples/val.jsonl and {run}/report.json (marked partial); re-run "
            f"the same command for a complete report"
        ],
    )
    report = report_of(tmp_path)
    assert report["partial"] is True and report["stopped_by"] == name and report["n"] == 8
    rows = [json.loads(line) for line in (run / "samples" / "val.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(8)]
    assert not (
        run / "samples" / "val.partial.jsonl"
    ).exists()  # the streamed copy was replaced by the full file
