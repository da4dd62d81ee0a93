"""Several "nodes" on one machine reaching each other over 127.0.0.1, as the sharded suite's two-node cells
and ``scripts/gpu_check.py`` run them: one launch per node (Lightning's ``NODE_RANK``, ``torchrun``), or
``scripts/slurm_fit.sbatch`` run as sbatch runs it, its ``srun`` a stand-in that starts every node's tasks
here. docs/scaling.md shows these commands (:func:`shell_line`).

Ports: the rendezvous port is one the OS has just reported free; if another process takes it before node 0
listens (node 0 then fails with EADDRINUSE), every process is stopped and the launch is tried on a new port.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ADDRESS = "127.0.0.1"
LAUNCHERS = ("lightning", "torchrun", "srun")
# Lightning logs this ("initializing deepspeed distributed: ..." under DeepSpeed) just before the rank joins
# the rendezvous: from then on it waits for the others.
WAITING = re.compile(r"nitializing (?:deepspeed )?distributed: GLOBAL_RANK: \d+")
PORT_TAKEN = re.compile(r"EADDRINUSE|[Aa]ddress already in use")
# Seconds a launch (every node, or one command) may run before it is killed with all its processes: the
# strategy matrix cannot hang.
TIMEOUT_S = 300
SRUN_STAND_IN = ROOT / "tests" / "sharded" / "slurm" / "srun"

Command = tuple[dict[str, str], list[str]]  # (environment added, argv with "python" / "torchrun" first)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that the OS reports free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((ADDRESS, 0))
        return sock.getsockname()[1]


def launch_commands(
    launcher: str, port: int | str, nodes: int, devices: int, program: Sequence[str]
) -> list[list[Command]]:
    """Per node, the processes to start so that ``nodes`` x ``devices`` ranks run ``program`` (``-m MODULE
    ARGS...`` or ``cli.py ARGS...``; ``--trainer.num_nodes`` / ``--trainer.devices`` are added): one launcher
    process per node (Lightning's own, ``torchrun``), or for ``srun`` the job script started once, as sbatch
    starts it, with the variables sbatch sets (its srun, :data:`SRUN_STAND_IN` here, starts every task)."""
    size = ["--trainer.num_nodes", str(nodes), "--trainer.devices", str(devices)]
    if launcher == "lightning":
        return [
            [
                (
                    {"NODE_RANK": str(node), "MASTER_ADDR": ADDRESS, "MASTER_PORT": str(port)},
                    ["python", *program, *size],
                )
            ]
            for node in range(nodes)
        ]
    if launcher == "torchrun":
        return [
            [
                (
                    {},
                    [
                        "torchrun",
                        "--nnodes",
                        str(nodes),
                        "--node_rank",
                        str(node),
                        "--nproc_per_node",
                        str(devices),
                        "--master_addr",
                        ADDRESS,
                        "--master_port",
                        str(port),
                        *program,
                        *size,
                    ],
                )
            ]
            for node in range(nodes)
        ]
    if launcher == "srun":
        job = {
            "SLURM_JOB_ID": "4242",
            "SLURM_JOB_NAME": "metalight",
            "SLURM_NNODES": str(nodes),
            "SLURM_NTASKS_PER_NODE": str(devices),
            "SLURM_NODELIST": ADDRESS,
            "MASTER_PORT": str(port),
        }
        return [[(job, ["bash", "scripts/slurm_fit.sbatch", *program])]]
    raise ValueError(f"unknown launcher {launcher!r}; use one of {', '.join(LAUNCHERS)}")


def shell_line(command: Command) -> str:
    """A command as one shell line (environment assignments first), as docs/scaling.md shows it."""
    env, argv = command
    return " ".join([*(f"{k}={v}" for k, v in env.items()), *argv])


@dataclass
class Process:
    """One started process of a node: a session of its own (killed as a group), its log and when it ended."""

    node: int
    popen: subprocess.Popen
    log: Path
    ended: float | None = None

    @property
    def returncode(self) -> int | None:
        """Exit status (``-9``: killed, by itself or by :func:`launch` at its deadline)."""
        return self.popen.returncode

    def text(self) -> str:
        """The output so far (stdout and stderr)."""
        return self.log.read_text(errors="replace") if self.log.is_file() else ""


def _start(node: int, command: Command, log: Path, cwd: Path) -> Process:
    env, argv = command
    # `python`, `torchrun` (and srun's `python`) are this interpreter's; `srun` is the stand-in.
    path = os.pathsep.join(
        [str(SRUN_STAND_IN.parent), str(Path(sys.executable).parent), os.environ.get("PATH", "")]
    )
    executable = {"python": sys.executable, "torchrun": str(Path(sys.executable).with_name("torchrun"))}
    with log.open("w") as handle:
        popen = subprocess.Popen(
            [executable.get(argv[0], argv[0]), *argv[1:]],
            cwd=cwd,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "PATH": path, **env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(node, popen, log)


def _start_node(node: int, commands: list[Command], logs: Path, cwds: Sequence[Path] | None) -> list[Process]:
    cwd = cwds[node] if cwds else ROOT
    return [
        _start(node, command, logs / f"node{node}_{index}.log", cwd) for index, command in enumerate(commands)
    ]


def _watch(processes: Sequence[Process], deadline: float, grace: float | None) -> None:
    """Wait until every process ended, the deadline passed, or (``grace``) that long after the first ended."""
    while True:
        now = time.monotonic()
        for process in processes:
            if process.ended is None and process.popen.poll() is not None:
                process.ended = now
        ended = [p.ended for p in processes if p.ended is not None]
        if (
            len(ended) == len(processes)
            or now > deadline
            or (grace is not None and ended and now > min(ended) + grace)
        ):
            return
        time.sleep(0.2)


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (Linux ``/proc``), also those in process groups of their own: ninja, e.g.
    when DeepSpeed JIT-builds an op, starts each compiler in its own group."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _kill_tree(popen: subprocess.Popen) -> None:
    """SIGKILL a process started in a session of its own, every process below it and its process group, then
    reap it."""
    for pid in [*_descendants(popen.pid), popen.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signal.SIGKILL)
    popen.wait()


def _stop(processes: Sequence[Process]) -> None:
    for process in processes:
        if process.popen.poll() is None:
            _kill_tree(process.popen)
        process.popen.wait()


def run_tree(
    argv: Sequence[str], timeout: float = TIMEOUT_S, cwd: Path = ROOT
) -> subprocess.CompletedProcess:
    """Run ``argv`` to its end (text output captured). Past ``timeout`` seconds it is killed with every
    process it started (Lightning's other ranks, compilers), which ``subprocess.run``'s timeout leaves
    running: the result then has status -9 and says so at the end of its stderr."""
    popen = subprocess.Popen(
        list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = popen.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(popen)
        stdout, stderr = popen.communicate()
        stderr += f"\n[killed with its processes after {timeout} s]"
    return subprocess.CompletedProcess(list(argv), popen.returncode, stdout, stderr)


def launch(
    commands: Callable[[int], list[list[Command]]],
    logs: Path,
    timeout: float = TIMEOUT_S,
    late: int | None = None,
    grace: float | None = None,
    cwds: Sequence[Path] | None = None,
    tries: int = 3,
) -> list[Process]:
    """Start every node's processes (``commands(port)[node]``, e.g. :func:`launch_commands`) and wait for
    them; returns them in node order.

    ``late``: the node started last, once every process of the others has logged that it waits at the
    rendezvous (they wait for it, then all go on). ``grace``: once one process has ended, the others get that
    many seconds to end too. Processes still running at the deadline (``timeout`` or ``grace``) are killed:
    their status is then -9. ``cwds``: each node's working directory (default: the repository root). A
    launch whose node 0 could not listen on its port is tried again on a new port."""
    logs.mkdir(parents=True, exist_ok=True)
    for attempt in range(tries):
        specs = commands(free_port())
        processes: list[Process] = []
        try:
            deadline = time.monotonic() + timeout
            for node in (n for n in range(len(specs)) if n != late):
                processes += _start_node(node, specs[node], logs, cwds)
            if late is not None:
                while (
                    not all(WAITING.search(p.text()) or p.popen.poll() is not None for p in processes)
                    and time.monotonic() < deadline
                ):
                    time.sleep(0.2)
                processes += _start_node(late, specs[late], logs, cwds)
            _watch(processes, deadline, grace)
        finally:
            _stop(processes)
        processes.sort(key=lambda p: p.node)
        if not any(PORT_TAKEN.search(p.text()) for p in processes if p.node == 0) or attempt == tries - 1:
            return processes
    raise AssertionError("unreachable")
