"""Two nodes on this machine (``num_nodes: 2, devices: 1``, rendezvous on 127.0.0.1, gloo), launched by
Lightning's ``NODE_RANK`` or ``torchrun`` (a launch per node), or by ``scripts/slurm_fit.sbatch`` with a
stand-in ``srun`` that starts both nodes' tasks here.

Each cell of ``TWO_NODES`` fits 2 steps, checkpoints, validates, resumes and exports (as in the matrix) and
must equal the same cell run as two processes of one launch (the matrix's tolerances); in one cell node 1
starts only once node 0 waits at the rendezvous. A node killed mid-fit stops the other with one error line
within ``SURVIVOR_TIMEOUT_S`` and leaves only complete checkpoints; nodes that do not share the run
directory's filesystem stop together with one error line. The commands are the ones docs/scaling.md shows.
"""

from __future__ import annotations

import json
import re
import socket
import zipfile
from pathlib import Path

import pytest
import torch

from tests.sharded.conftest import report_differences, skip_without_deepspeed
from tests.sharded.nodes import WAITING, launch, launch_commands, shell_line
from tests.sharded.strategy_cell import PROBE_IDS, TWO_NODES, cell_args, cell_program

ROOT = Path(__file__).resolve().parents[2]
CPU = ("--trainer.accelerator", "cpu", "--trainer.precision", "32-true")
# Once one node has died, the other must have stopped within this many seconds (docs/scaling.md). Over gloo a
# dead process's connections close at once and the survivor fails at its next collective (seconds here).
SURVIVOR_TIMEOUT_S = 120
LOST = "error: global rank 0 lost the other ranks of this distributed run ("


def two_nodes(launcher: str, program: list[str]):
    """``commands(port)`` for :func:`launch`: two nodes of one rank each running ``program``."""
    return lambda port: launch_commands(launcher, port, 2, 1, program)


def logs_tail(processes) -> str:
    return "\n".join(f"--- node {p.node} (status {p.returncode}):\n{p.text()[-4000:]}" for p in processes)


def test_the_documented_two_node_commands_are_the_ones_run_here():
    docs = (ROOT / "docs" / "scaling.md").read_text()
    for name, (launcher, _) in TWO_NODES.items():
        for node in two_nodes(launcher, cell_program("$OUT", name, "$MODEL", *CPU))("$PORT"):
            for line in map(shell_line, node):
                assert line in docs, f"docs/scaling.md lacks the command the tests run:\n{line}"


def test_the_documented_sbatch_script_is_the_one_run_here():
    script = (ROOT / "scripts" / "slurm_fit.sbatch").read_text().splitlines()
    lines = [line for line in script if not line.startswith("# ") and line != "#"]
    assert "```bash\n" + "\n".join(lines) + "\n```" in (ROOT / "docs" / "scaling.md").read_text()


@pytest.fixture(scope="module")
def two_node_cells(tmp_path_factory, varied_model_dir):
    """``get(name) -> (result.json, output directory, processes)`` of a cell run as two nodes, once each."""
    done: dict[str, tuple] = {}

    def get(name: str):
        if name not in done:
            skip_without_deepspeed(name)
            launcher, late = TWO_NODES[name]
            out = tmp_path_factory.getbasetemp() / "two_nodes" / name
            processes = launch(
                two_nodes(launcher, cell_program(out, name, varied_model_dir, *CPU)), out / "logs", late=late
            )
            assert processes and all(p.returncode == 0 for p in processes), logs_tail(processes)
            done[name] = (json.loads((out / "result.json").read_text()), out, processes)
        return done[name]

    return get


def base_logits(model_dir: Path) -> torch.Tensor:
    """The untrained model's logits of the cells' probe input."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=PROBE_IDS).logits


@pytest.mark.sharded
@pytest.mark.parametrize("name", list(TWO_NODES))
def test_two_nodes_equal_one_machine(name, two_node_cells, cells, varied_model_dir):
    result, out, processes = two_node_cells(name)
    _, reference_out = cells(name)
    assert (result["world_size"], result["fit_steps"], result["resumed_steps"]) == (2, 2, 3)
    late = TWO_NODES[name][1]
    if late is not None:  # the other node waited at the rendezvous before the late one started
        assert WAITING.search(processes[1 - late].text())
    # validation: the same answers, split over the ranks by global rank and gathered
    report = json.loads((out / "cell" / "validate" / "report.json").read_text())
    expected = json.loads((reference_out / "cell" / "validate" / "report.json").read_text())
    assert report["n"] == expected["n"] > 0
    assert not report_differences(report, expected)
    # training: the same weights after 2 steps (logits of the in-memory model, the matrix's fp32 tolerance)
    logits = torch.load(out / "logits.pt")
    torch.testing.assert_close(logits, torch.load(reference_out / "logits.pt"), rtol=1e-6, atol=1e-5)
    if not name.startswith("grpo"):  # (GRPO's 2 completions of a random model may tie: no update)
        assert not torch.allclose(logits, base_logits(varied_model_dir)), "training did not move the weights"
    if name.startswith("sft_lora"):  # one export, gathered from both nodes' shards
        from safetensors.torch import load_file

        adapter = load_file(out / "cell" / "fit" / "hf" / "adapter_model.safetensors")
        expected_adapter = load_file(reference_out / "cell" / "fit" / "hf" / "adapter_model.safetensors")
        assert adapter.keys() == expected_adapter.keys()
        for key in adapter:
            torch.testing.assert_close(adapter[key], expected_adapter[key], rtol=0, atol=1e-5, msg=key)
    # global rank 0 alone printed the validation report (once: validate prints it, fit does not)
    assert sum(len(re.findall(r"^report: ", p.text(), re.MULTILINE)) for p in processes) == 1


@pytest.mark.sharded
def test_a_node_dying_mid_fit_stops_the_other_with_one_error_and_complete_checkpoints(
    tmp_path, varied_model_dir
):
    # The ESMA cell's fit, 8 steps, a checkpoint after step 5 (the quickstart's every_n_train_steps), and
    # node 1 killing itself (SIGKILL, as a failing machine) after step 6.
    program = [
        "cli.py",
        "fit",
        *cell_args("esma-ddp", varied_model_dir),
        *CPU,
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        "--trainer.max_steps",
        "8",
        "--trainer.callbacks+=tests.sharded.strategy_cell.KillRank",
        "--trainer.callbacks.rank=1",
        "--trainer.callbacks.step=6",
    ]
    processes = launch(two_nodes("lightning", program), tmp_path / "logs", grace=SURVIVOR_TIMEOUT_S)
    assert processes[1].returncode == -9, logs_tail(processes)
    # the survivor stopped by itself (launch kills it, status -9, SURVIVOR_TIMEOUT_S after node 1 ended)
    assert processes[0].returncode == 1, logs_tail(processes)
    last = processes[0].text().strip().splitlines()[-1]
    assert last.startswith(LOST) and "--ckpt_path" in last, last
    (run,) = (tmp_path / "esma-quickstart").iterdir()  # one run directory: global rank 0 alone claimed it
    files = [p for p in run.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".") or p.suffix in (".tmp", ".partial")]
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert len(checkpoints) == 2 and "last.ckpt" in checkpoints, checkpoints
    for name in checkpoints:
        path = run / "checkpoints" / name
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None, name
        assert torch.load(path, map_location="cpu", weights_only=False)["global_step"] == 5


@pytest.mark.sharded
def test_nodes_that_do_not_share_the_run_directory_stop_together_with_one_error(tmp_path, varied_model_dir):
    # A relative save_dir and a working directory per node: node 1's "runs/..." is not node 0's, as on
    # machines without a shared filesystem.
    cwds = [tmp_path / "node0", tmp_path / "node1"]
    for cwd in cwds:
        cwd.mkdir()
        for name in ("cli.py", "configs"):
            (cwd / name).symlink_to(ROOT / name)
    program = [
        "cli.py",
        "fit",
        *cell_args("esma-ddp", varied_model_dir),
        *CPU,
        "--trainer.logger.init_args.save_dir",
        "runs",
        "--trainer.max_steps",
        "2",
    ]
    processes = launch(
        two_nodes("lightning", program), tmp_path / "logs", grace=SURVIVOR_TIMEOUT_S, cwds=cwds
    )
    expected = (
        f"error: the run directory runs/esma-quickstart/version_0 that global rank 0 created is not visible "
        f"on node 1 ({socket.gethostname()}, rank 1): a multi-node run needs"
    )
    for process in processes:
        assert process.returncode == 2, logs_tail(processes)
        assert process.text().strip().splitlines()[-1].startswith(expected), logs_tail(processes)
    # nothing was written but the TensorBoard events file Lightning opens before any set-up hook runs
    written = [p.name for p in (cwds[0] / "runs").rglob("*") if p.is_file()]
    assert all(name.startswith("events.out.tfevents.") for name in written), written
    assert not (cwds[1] / "runs").exists()
