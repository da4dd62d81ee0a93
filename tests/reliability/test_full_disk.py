"""Item 10 of issue 32: a write that fails keeps what was done. Answers that cannot be written to the run
directory (full disk, made read-only) go to a rescue directory named in one line; an unwritable API cache
keeps the replies in memory and counts them; a cache line that is not UTF-8 is skipped and counted; a
checkpoint that cannot be written leaves no half-written file and the previous one intact."""

import errno
import json

import pytest

from metalight.callbacks.checkpoints import AtomicCheckpointIO, CheckpointWriteError
from metalight.callbacks.rescue import RESCUE_ENV
from tests.reliability.conftest import FullDisk, eval_args, report_of, run_main
from tests.reliability.test_api_faults import _api_args


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS], ids=["disk-full", "read-only"])
def test_answers_that_cannot_be_written_are_rescued(
    code, tmp_path, tiny_model_dir, trivia20, capsys, monkeypatch
):
    monkeypatch.setenv(RESCUE_ENV, str(tmp_path / "rescue"))
    FullDisk(monkeypatch, tmp_path / "runs", code)
    code_, errors = run_main(
        eval_args(tiny_model_dir, tmp_path / "runs", "--data.init_args.path", str(trivia20)), capsys
    )
    run = tmp_path / "runs" / "eval-triviaqa" / "version_0"
    rescued = tmp_path / "rescue" / "eval-triviaqa-version_0-val-step0"
    reason = "No space left on device" if code == errno.ENOSPC else "Read-only file system"
    assert (code_, errors) == (
        2,
        [
            f"error: cannot write {run}/samples/val_step0.jsonl ({reason}): the 20 answers and "
            f"the report were saved to {rescued} instead; free space there (or set "
            f"trainer.default_root_dir to another disk) before the next run"
        ],
    )
    assert len((rescued / "samples" / "val.jsonl").read_text().splitlines()) == 20
    assert json.loads((rescued / "report.json").read_text())["n"] == 20
    assert not list(run.rglob(".*.jsonl.*"))  # no half-written temporary file is left behind


def test_an_unwritable_cache_keeps_the_replies_and_counts_them(chat_server, tmp_path, capsys, caplog):
    cache = tmp_path / "cache.jsonl"
    cache.mkdir()  # a directory where the cache file should be: every append fails
    code, errors = run_main(_api_args(chat_server, tmp_path), capsys)
    report = report_of(tmp_path / "runs", "eval-api")
    assert (code, errors) == (0, []) and report["n"] == 2 and report["api_cache_unwritten"] == 4
    assert f"cannot write the API cache {cache} (Is a directory)" in caplog.text


def test_a_cache_line_that_is_not_utf8_is_skipped_and_counted(chat_server, tmp_path, capsys):
    assert run_main(_api_args(chat_server, tmp_path), capsys)[0] == 0
    cache = tmp_path / "cache.jsonl"
    lines = cache.read_bytes().splitlines(keepends=True)
    cache.write_bytes(lines[0].replace(b"echo", b"\xe9cho") + b"".join(lines[1:]))
    chat_server.requests.clear()
    code, errors = run_main(_api_args(chat_server, tmp_path), capsys)
    report = report_of(tmp_path / "runs", "eval-api", version=1)
    assert (code, errors) == (0, []) and report["n"] == 2 and report["api_cache_skipped_lines"] == 1
    assert len(chat_server.requests) == 1  # only the skipped line's prompt is asked (and paid) again


def test_a_checkpoint_that_cannot_be_written_leaves_the_previous_one(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    last = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, last)
    before = last.read_bytes()
    FullDisk(monkeypatch, tmp_path)
    with pytest.raises(CheckpointWriteError) as refused:
        io.save_checkpoint({"global_step": 2, "weights": list(range(10_000))}, last)
    assert str(refused.value) == (
        f"cannot write checkpoint {last} (No space left on device): nothing half-written "
        f"was left and the previous last.ckpt there is kept; free space there (or point the "
        f"checkpoint's dirpath at another disk) and resume from the last good checkpoint"
    )
    assert last.read_bytes() == before and [p.name for p in last.parent.iterdir()] == ["last.ckpt"]
