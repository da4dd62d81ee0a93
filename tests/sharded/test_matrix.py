"""The strategy matrix, run for real on CPU: 2 gloo processes per cell through ``cli.py``'s entry point.

Each cell (``tests/sharded/strategy_cell.py``, which also lists the cells) fits 2 steps, checkpoints (sharded
under FSDP / DeepSpeed), validates from that checkpoint in a fresh trainer, and resumes one more step; configs
that export write ``hf/`` from the gathered shards. DeepSpeed cells are skipped, with the install hint, where
the package is missing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from tests.sharded.conftest import CPU2, report_differences, skip_without_deepspeed
from tests.sharded.nodes import run_tree
from tests.sharded.strategy_cell import MATRIX, PROBE_IDS

pytestmark = pytest.mark.sharded

ROOT = Path(__file__).resolve().parents[2]


def exported_logits(hf_dir: Path) -> torch.Tensor:
    """Logits of the cell's probe input from an exported ``save_pretrained`` directory."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=PROBE_IDS).logits


@pytest.mark.parametrize("name", list(MATRIX))
def test_cell_fits_validates_exports_and_resumes(name, cells):
    result, out = cells(name)
    assert result["world_size"] == 2
    assert (result["fit_steps"], result["resumed_steps"]) == (2, 3)
    assert result["validate"], "validation logged nothing"
    if name.startswith("sft_full"):
        # the exported directory loads and gives the in-memory (sharded) model's logits, to fp32 rounding
        # (logits up to ~20 in size: the gathered forward sums in another order)
        torch.testing.assert_close(
            exported_logits(out / "cell" / "fit" / "hf"), torch.load(out / "logits.pt"), rtol=1e-6, atol=1e-5
        )
    if name.startswith("sft_lora"):
        assert (out / "cell" / "fit" / "hf" / "adapter_config.json").is_file()
    if name.startswith("metaconf"):
        assert "val/verbal_accuracy" in result["validate"]  # the verbal-confidence half of its validation ran
    if name.startswith("judgment"):
        judgment = out / "cell" / "fit" / "judgment"
        # the re-collection at the epoch's end gathered every question from the two ranks' halves
        rows = [json.loads(line) for line in (judgment / "train_epoch1.jsonl").read_text().splitlines()]
        assert len({r["id"] for r in rows}) == 4
        # the resumed run went on from the checkpoint's rounds instead of relabelling with the base weights
        resumed = json.loads((out / "cell" / "resume" / "judgment" / "summary.json").read_text())
        assert [r["epoch"] for r in resumed["rounds"]][:2] == [0, 1]
        assert not (out / "cell" / "resume" / "judgment" / "train_epoch0.jsonl").exists()


@pytest.mark.parametrize("fragment", ["fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_validation_report_under_sharding_equals_single_process(fragment, cells):
    _, out = cells(f"sft_full-{fragment}")
    _, single_out = cells("sft_full-single")
    report = json.loads((out / "cell" / "validate" / "report.json").read_text())
    reference = json.loads((single_out / "cell" / "validate" / "report.json").read_text())
    assert report["n"] == reference["n"] == 4
    assert not report_differences(report, reference)


@pytest.fixture(scope="module")
def yes_no_examples(tmp_path_factory) -> Path:
    """4 prompt-completion rows whose completions are one token each ("Yes" / "No"): every row has the same
    number of labelled tokens, so the mean over ranks of per-rank token means is the one-process mean."""
    path = tmp_path_factory.mktemp("yes-no") / "train.jsonl"
    prompts = ["Is Paris in France?", "Is the sun cold at its core today?", "Do fish swim?", "Is two odd?"]
    rows = [{"prompt": p, "completion": c} for p, c in zip(prompts, ["Yes", "No", "Yes", "No"])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def fit_weights(out: Path, data: Path, model_dir: Path, batch_size: int, *strategy: str) -> dict:
    """Full fine-tuning for 2 optimizer steps (2 epochs of the 4 rows); returns the exported weights."""
    from safetensors.torch import load_file

    args = [
        "cli.py",
        "fit",
        "--config",
        "configs/sft/prompt_completion.yaml",
        "--model.init_args.model",
        str(model_dir),
        "--model.init_args.lora",
        "null",
        "--model.init_args.optimizer.lr",
        "1.0e-3",
        "--model.init_args.lr_scheduler.warmup_ratio",
        "0.0",
        "--model.init_args.export",
        "full",
        "--data.init_args.path",
        str(data),
        "--data.init_args.eval_source",
        "null",
        "--data.init_args.batch_size",
        str(batch_size),
        "--trainer.max_epochs",
        "2",
        "--trainer.enable_checkpointing",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(out),
        "--trainer.logger.init_args.version",
        "run",
        *strategy,
    ]
    proc = run_tree([sys.executable, *args])
    assert proc.returncode == 0, proc.stderr[-5000:]
    (hf,) = out.glob("*/run/hf")
    return load_file(hf / "model.safetensors")


# fp32, 2 AdamW steps at lr 1e-3: sharded reductions sum gradients in another order than one process, and
# Adam's normalised update turns a last-bit gradient difference into at most ~1e-6 of weight.
WEIGHT_ATOL = 1e-5


@pytest.mark.parametrize("fragment", ["fsdp", "deepspeed_zero3"])
def test_sft_full_fine_tuning_weights_equal_single_process(
    fragment, tmp_path, yes_no_examples, varied_model_dir
):
    skip_without_deepspeed(fragment)
    base = fit_weights(
        tmp_path / "single",
        yes_no_examples,
        varied_model_dir,
        4,
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "1",
    )
    sharded = fit_weights(
        tmp_path / fragment,
        yes_no_examples,
        varied_model_dir,
        2,
        "--config",
        f"configs/strategy/{fragment}.yaml",
        *CPU2,
    )
    from safetensors.torch import load_file

    start = load_file(varied_model_dir / "model.safetensors")
    assert any(not torch.equal(base[k], start[k]) for k in base), "the single-process run did not train"
    assert base.keys() == sharded.keys()
    for key in base:
        torch.testing.assert_close(sharded[key], base[key], rtol=0, atol=WEIGHT_ATOL, msg=key)
