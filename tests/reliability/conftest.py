"""Shared pieces of the fault catalogue: a small TriviaQA-schema file, the CLI in-process and as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metalight.cli import main
from tests.api.conftest import chat_server  # noqa: F401  (the real local HTTP server fixture)

ROOT = Path(__file__).resolve().parents[2]


def write_trivia(path: Path, rows: int = 20) -> Path:
    """A TriviaQA-schema JSONL file with ``rows`` questions."""
    path.write_text("".join(json.dumps({"question": f"What is item number {i}?", "question_id": f"q{i}",
                                        "answer": {"value": f"a{i}", "aliases": [f"a{i}"]}}) + "\n"
                            for i in range(rows)))
    return path


@pytest.fixture
def trivia20(tmp_path) -> Path:
    return write_trivia(tmp_path / "trivia20.jsonl")


def eval_args(model_dir, root: Path, *extra: str) -> list[str]:
    """``validate`` of the README's TriviaQA config on the tiny model, writing under ``root``."""
    return ["validate", "--config", str(ROOT / "configs/eval/triviaqa.yaml"), "--model.init_args.model",
            str(model_dir), "--model.init_args.evaluation.max_new_tokens", "2", "--report.plots", "false",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root), *extra]


def run_main(args: list[str], capsys) -> tuple[int, list[str]]:
    """Run the CLI in this process: ``(exit code, the stderr lines starting with 'error:')``; what it printed
    to stdout is kept in ``run_main.out``."""
    try:
        main(args)
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    run_main.out, err = captured.out, captured.err
    return code, [line for line in err.splitlines() if line.startswith("error:")]


def run_cli(*args: str, cwd: Path = ROOT, **popen) -> subprocess.Popen:
    """Start ``python cli.py ARGS`` as a real process (stdout and stderr piped)."""
    return subprocess.Popen([sys.executable, "cli.py", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def report_of(root: Path, experiment: str = "eval-triviaqa", version: int = 0) -> dict:
    """The report.json of ``root/<experiment>/version_<version>``, parsed as strict JSON."""
    text = (root / experiment / f"version_{version}" / "report.json").read_text()
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"report.json holds bare {name}"))
