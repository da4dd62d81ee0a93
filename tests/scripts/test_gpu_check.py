"""scripts/gpu_check.py refuses cleanly where no CUDA GPU is visible, and lists only real matrix cells."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_without_cuda_is_a_one_line_refusal(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.gpu_check", "--out", str(out)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1].startswith("error: scripts/gpu_check.py needs a CUDA GPU")
    assert "tests/sharded" in proc.stderr and not out.exists()


def test_every_matrix_cell_names_a_real_config_and_fragment():
    from tests.sharded.strategy_cell import MATRIX, SINGLE, TWO_NODES

    assert set(TWO_NODES) <= set(MATRIX)  # every two-node cell is compared with its one-launch run
    for args, fragment in [*MATRIX.values(), *SINGLE.values()]:
        assert fragment is None or (ROOT / f"configs/strategy/{fragment}.yaml").is_file()
        config = args[args.index("--config") + 1]
        assert (ROOT / config).is_file(), config
