"""Shared pieces of the fault catalogue: a small TriviaQA-schema file, the CLI in-process and as a process, a
full disk."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from metalight.cli import main
from tests.api.conftest import chat_server  # noqa: F401  (a fixture the API fault tests use)

ROOT = Path(__file__).resolve().parents[2]


def write_trivia(path: Path, rows: int = 20) -> Path:
    """A TriviaQA-schema JSONL file with ``rows`` questions."""
    path.write_text(
        "".join(
            json.dumps(
                {
                    "question": f"What is item number {i}?",
                    "question_id": f"q{i}",
                    "answer": {"value": f"a{i}", "aliases": [f"a{i}"]},
                }
            )
            + "\n"
            for i in range(rows)
        )
    )
    return path


@pytest.fixture
def trivia20(tmp_path) -> Path:
    return write_trivia(tmp_path / "trivia20.jsonl")


def eval_args(model_dir, root: Path, *extra: str) -> list[str]:
    """``validate`` of the README's TriviaQA config on the tiny model, writing under ``root``."""
    return [
        "validate",
        "--config",
        str(ROOT / "configs/eval/triviaqa.yaml"),
        "--model.init_args.model",
        str(model_dir),
        "--model.init_args.evaluation.max_new_tokens",
        "2",
        "--report.plots",
        "false",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(root),
        *extra,
    ]


def run_main(args: list[str], capsys) -> tuple[int, list[str]]:
    """Run the CLI in this process: ``(exit code, the stderr lines starting with 'error:')``; what it printed
    to stdout is kept in ``run_main.out``."""
    try:
        main(args)
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    run_main.out, run_main.err = captured.out, captured.err
    return code, [line for line in captured.err.splitlines() if line.startswith("error:")]


def run_cli(*args: str, cwd: Path = ROOT, **popen) -> subprocess.Popen:
    """Start ``python cli.py ARGS`` as a real process (stdout and stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "cli.py", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


def esma_fit_args(model_dir, questions: Path, root: Path, *extra: str) -> list[str]:
    """``fit`` of the ESMA quickstart config on the tiny model for 2 steps (2 members x 2 questions), writing
    under ``root``, without validation unless ``extra`` asks for it."""
    return [
        "fit",
        "--config",
        str(ROOT / "configs/esma/quickstart.yaml"),
        "--model.init_args.model",
        str(model_dir),
        "--model.init_args.population_size",
        "2",
        "--model.init_args.num_data_per_iteration",
        "2",
        "--trainer.limit_val_batches",
        "0",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.max_steps",
        "2",
        "--trainer.default_root_dir",
        str(root),
        "--data",
        "metalight.data.sources.triviaqa.TriviaQADataModule",
        "--data.init_args.path",
        str(questions),
        "--data.init_args.batch_size",
        "1",
        *extra,
    ]


@pytest.fixture(scope="session")
def esma_run(tmp_path_factory, tiny_model_dir):
    """An ESMA fit of 2 steps on a 20-question file, validated once at the end on its held-out rows:
    ``(runs root, questions file, its last.ckpt, what it printed)``."""
    root = tmp_path_factory.mktemp("esma-run")
    questions = write_trivia(root / "q.jsonl")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(
            esma_fit_args(
                tiny_model_dir,
                questions,
                root / "runs",
                "--trainer.limit_val_batches",
                "1.0",
                "--trainer.val_check_interval",
                "2",
                "--report.plots",
                "false",
            )
        )
    (last,) = (root / "runs").rglob("last.ckpt")
    return root / "runs", questions, last, printed.getvalue()


def report_of(root: Path, experiment: str = "eval-triviaqa", version: int = 0) -> dict:
    """The report.json of ``root/<experiment>/version_<version>``, parsed as strict JSON."""
    text = (root / experiment / f"version_{version}" / "report.json").read_text()
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"report.json holds bare {name}"))


class FullDisk:
    """Makes every write metalight opens under ``root`` fail as on a full disk (``errno``: ENOSPC) or a
    read-only directory (EROFS): a new file gets half of its first write before the error (so a leftover
    partial file would show), an append fails at once. Tests run as root, for whom ``chmod`` does not stop a
    write, so the failure is injected where metalight opens its files (``metalight.io``)."""

    def __init__(self, monkeypatch, root: Path, code: int = errno.ENOSPC):
        import metalight.io as io_module

        self.root, self.code = Path(root), code
        open_temp, open_append = io_module._open_temp, io_module._open_append

        def failing_temp(path: Path):
            handle, tmp = open_temp(path)
            return (_HalfWriter(handle, self.error()) if self.covers(path) else handle), tmp

        def failing_append(path: Path):
            if self.covers(path):
                raise self.error()
            return open_append(path)

        monkeypatch.setattr(io_module, "_open_temp", failing_temp)
        monkeypatch.setattr(io_module, "_open_append", failing_append)

    def covers(self, path: Path) -> bool:
        return Path(path).resolve().is_relative_to(self.root.resolve())

    def error(self) -> OSError:
        return OSError(self.code, os.strerror(self.code))


class _HalfWriter:
    """A file handle whose first write stores half the bytes and then raises ``error``."""

    def __init__(self, handle, error: OSError):
        self.handle, self.error = handle, error

    def write(self, data) -> int:
        self.handle.write(bytes(data)[: len(data) // 2])
        self.handle.flush()
        raise self.error

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()
        return False


def flip_inside_a_tensor(path, count=64):
    """Flip ``count`` bytes in the middle of the largest tensor record of a torch zip checkpoint."""
    with zipfile.ZipFile(path) as archive:
        info = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    data[start : start + count] = bytes(b ^ 0xFF for b in data[start : start + count])
    path.write_bytes(bytes(data))
    return info.filename
