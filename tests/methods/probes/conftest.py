"""A probe run fitted on the tiny random Llama, shared by the experiment tests."""

import pytest
from lightning.pytorch import Trainer

from metalight.data.sources.true_false import TrueFalseDataModule
from metalight.methods.probes.module import ProbeModule


@pytest.fixture(scope="session")
def probe_run(tiny_model_dir, tmp_path_factory):
    """Directory of a fitted ProbeModule run (layers 0, 1; axes lr, pc1, pc2) with 16 held-out statements."""
    root = tmp_path_factory.mktemp("probe-run")
    rows = [f"Statement {i} says the sky is {'blue' if i % 2 else 'green'} today.,{i % 2}" for i in range(40)]
    (root / "s.csv").write_text("statement,label\n" + "\n".join(rows) + "\n")
    data = TrueFalseDataModule(path=str(root / "s.csv"), batch_size=8)
    module = ProbeModule(model=str(tiny_model_dir), pcs=[1, 2], cache_dir=str(root / "cache"))
    Trainer(
        max_epochs=5,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=str(root / "run"),
        num_sanity_val_steps=0,
    ).fit(module, data)
    return root / "run"
