"""Two-process DDP (gloo, CPU) for the gradient methods not covered elsewhere: SFT and activation probes.

(Evaluation: test_eval_ddp.py; ESMA: test_esma.py; GRPO: test_grpo_ddp.py; judgment re-collection:
methods/judgment/test_judgment_loop.py; ICM refuses more than one device: its search is sequential.)
"""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DDP = ("--config", "configs/strategy/ddp.yaml", "--trainer.devices", "2", "--trainer.accelerator", "cpu")


def fit(save_dir: Path, *args: str) -> Path:
    """Run ``cli.py fit`` in a fresh process; returns the run directory."""
    subprocess.run(
        [sys.executable, "cli.py", "fit", *args, "--trainer.logger.init_args.save_dir", str(save_dir)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (experiment,) = save_dir.iterdir()
    (run,) = experiment.iterdir()
    return run


def test_sft_under_ddp_reports_the_single_process_metrics(tmp_path, varied_model_dir):
    # lr 0 keeps the weights (LoRA's B starts at zero), so the training loop runs under DDP and the
    # validation that follows must equal one process on the same questions.
    args = (
        "--config",
        "configs/sft/knowledge_quickstart.yaml",
        "--model.init_args.model",
        str(varied_model_dir),
        "--model.init_args.optimizer.lr",
        "0.0",
        "--trainer.max_epochs",
        "1",
        "--trainer.check_val_every_n_epoch",
        "1",
        "--data.init_args.max_samples",
        '{"train": 4, "val": 7}',
        "--data.init_args.batch_size",
        "2",
        "--data.init_args.eval_batch_size",
        "2",
        "--model.init_args.evaluation.max_new_tokens",
        "4",
    )
    single = json.loads((fit(tmp_path / "single", *args) / "report.json").read_text())
    ddp = json.loads((fit(tmp_path / "ddp", *args, *DDP) / "report.json").read_text())
    assert single["n"] == ddp["n"] == 7
    for key in ("accuracy", "yes_ratio", "raw_alignment", "auroc_type2", "ece", "brier"):
        a, b = single[key], ddp[key]
        assert (a is None and b is None) or abs(a - b) < 1e-6, key  # undefined values are null in report.json


def test_probes_under_ddp_give_the_single_process_pc_axes(tmp_path, tiny_model_dir):
    rows = [
        f"I really like fresh apples number {i}.,1"
        if i % 2 == 0
        else f"Nobody should ever eat rotten bananas {i}.,0"
        for i in range(40)
    ]
    data = tmp_path / "statements.csv"
    data.write_text("statement,label\n" + "\n".join(rows) + "\n")
    args = (
        "--config",
        "configs/probes/true_false.yaml",
        "--model.init_args.model",
        str(tiny_model_dir),
        "--model.init_args.cache_dir",
        str(tmp_path / "cache"),
        "--model.init_args.pcs",
        "[1, 2]",
        "--data.class_path",
        "metalight.data.sources.true_false.TrueFalseDataModule",
        "--data.init_args.path",
        str(data),
        "--data.init_args.batch_size",
        "8",
        "--trainer.max_epochs",
        "4",
        "--trainer.check_val_every_n_epoch",
        "4",
    )
    single = json.loads((fit(tmp_path / "single", *args) / "probe_report.json").read_text())
    ddp = json.loads((fit(tmp_path / "ddp", *args, *DDP) / "probe_report.json").read_text())
    assert ddp["axes"] == single["axes"] == ["lr", "pc1", "pc2"]
    for split in ("val", "test"):
        assert ddp["splits"][split]["n"] == single["splits"][split]["n"]
        # PC axes are fitted in closed form on the whole train split: identical under DDP
        for metric in ("accuracy", "auroc"):
            assert [row[1:] for row in ddp["splits"][split][metric]] == [
                row[1:] for row in single["splits"][split][metric]
            ]
