"""The harness of the sharded tests ends what it starts: a launch past its time is killed with every process
below it."""

import sys
from pathlib import Path

from tests.sharded.nodes import run_tree


def test_a_command_past_its_timeout_is_killed_with_the_processes_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    # The child starts a grandchild that would outlive it, writes its pid, and waits.
    script = (
        "import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
        f"time.sleep(600)']); open({str(pid_file)!r}, 'w').write(str(p.pid)); print('started', flush=True); "
        "time.sleep(600)"
    )
    result = run_tree([sys.executable, "-c", script], timeout=10)
    assert result.returncode == -9 and "started" in result.stdout
    assert result.stderr.endswith("[killed with its processes after 10 s]")
    assert not running(int(pid_file.read_text()))


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (ended, waiting for init to reap it)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_that_ends_returns_its_status_and_output():
    result = run_tree([sys.executable, "-c", "import sys; print('out'); sys.exit(3)"])
    assert (result.returncode, result.stdout) == (3, "out\n")
