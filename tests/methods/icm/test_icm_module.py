"""ICMModule end to end on a tiny random Llama: outputs and logs, exact resume, bad input, iterative
fine-tuning."""

import json
from pathlib import Path

import pytest
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger

from metalight.data.sources.gsm8k_verification import GSM8KVerificationDataModule
from metalight.errors import ConfigError
from metalight.methods.icm import ICMModule, IterativeFineTuning
from metalight.methods.icm.finetune import sft_rows
from tests.report_keys import assert_report_keys

FINETUNE_CALLS = []


def fake_finetune(initial_model, rows_path, output_dir, settings):
    """Stands in for SFT: records what it was given and returns the same weights under another spec."""
    FINETUNE_CALLS.append(
        (initial_model, [json.loads(line) for line in Path(rows_path).read_text().splitlines()])
    )
    return initial_model.rstrip("/") + "/"


def claims_file(tmp_path, problems=4):
    rows = [
        {
            "id": f"p{p}-{k}",
            "question": f"Tom has {p + 2} apples and buys {k + 1} more. How many now?",
            "choice": f"{p + 2} + {k + 1} = {p + k + 3 + k}. The answer is {p + k + 3 + k}.",
            "answer": str(p + k + 3 + k),
            "label": int(k == 0),
            "consistency_id": f"p{p}",
        }
        for p in range(problems)
        for k in range(2)
    ]
    path = tmp_path / "claims.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def fit(tmp_path, model_dir, data_path, ckpt_path=None, callbacks=(), data_args=None, **module_args):
    args = dict(model=str(model_dir), K=4, chunk_size=4, num_seed=2, alpha=30.0) | module_args
    module = ICMModule(**args)
    trainer = Trainer(
        max_epochs=-1,
        limit_val_batches=0,
        logger=TensorBoardLogger(str(tmp_path), name="icm"),
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=bool(callbacks),
        log_every_n_steps=1,
    )
    trainer.fit(
        module,
        datamodule=GSM8KVerificationDataModule(path=data_path, **(data_args or {})),
        ckpt_path=ckpt_path,
    )
    return module, trainer


def test_fit_labels_every_chunk_and_writes_report_and_labels(tmp_path, tiny_model_dir):
    module, trainer = fit(tmp_path, tiny_model_dir, claims_file(tmp_path))
    assert trainer.global_step == 2 * 4  # 8 claims -> 2 chunks of 4, K = 4 steps each
    out = Path(trainer.log_dir)
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["chunks_done"] == 2 and report["claims"] == 8
    assert_report_keys(report, "icm")
    assert set(report["agreement"]) == {"icm", "zero_shot", "random", "random_demos", "gold_demos"}
    assert report["agreement_counts"]["zero_shot"]["total"] == 8
    assert report["settings"]["rule"] == "ExclusiveAnswers" and report["work"]["queries"] > 0
    labels = [json.loads(line) for line in (out / "icm" / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 8 and {row["gold"] for row in labels} == {0, 1}
    logged = set(trainer.logged_metrics)
    assert {
        "train/energy",
        "train/temperature",
        "train/inconsistent",
        "train/agreement",
        "train/chunk_agreement_icm",
    } <= logged


def test_resume_from_a_mid_chunk_checkpoint_replays_the_same_proposals(tmp_path, tiny_model_dir):
    data = claims_file(tmp_path)
    saver = ModelCheckpoint(
        dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1, filename="{step}"
    )
    reference, _ = fit(tmp_path / "a", tiny_model_dir, data, callbacks=[saver])
    checkpoint = tmp_path / "ckpt" / "step=6.ckpt"
    assert checkpoint.is_file()
    resumed, trainer = fit(tmp_path / "b", tiny_model_dir, data, ckpt_path=str(checkpoint))
    steps = lambda records: [(r.step, r.example, r.proposed, r.accepted) for r in records]  # noqa: E731
    assert steps(resumed.proposals) == steps(reference.proposals)[6:]
    assert resumed.finished[-1]["labels"] == reference.finished[-1]["labels"]
    assert trainer.global_step == 8


def test_held_out_claims_are_labelled_with_icm_labels_as_demonstrations(tmp_path, tiny_model_dir):
    data = GSM8KVerificationDataModule(path=claims_file(tmp_path, problems=6), test_fraction=0.34)
    module, trainer = fit(tmp_path, tiny_model_dir, data.path, data_args={"test_fraction": 0.34}, K=2)
    metrics = trainer.test(module, datamodule=data, verbose=False)[0]
    assert {"test/accuracy_icm_demos", "test/accuracy_gold_demos", "test/accuracy_zero_shot"} <= set(metrics)
    assert all(0 <= v <= 1 for v in metrics.values())


def test_testbed_without_rules_is_rejected(tmp_path, tiny_model_dir):
    class Poetry(GSM8KVerificationDataModule):
        testbed = "poetry"

    module = ICMModule(model=str(tiny_model_dir), K=1)
    trainer = Trainer(max_epochs=-1, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match="testbed 'poetry' has no consistency rules"):
        trainer.fit(module, datamodule=Poetry(path=claims_file(tmp_path)))


def test_dataset_larger_than_the_context_without_chunk_size_is_rejected(tmp_path, tiny_model_dir):
    with pytest.raises(
        ConfigError, match=r"claims do not fit in the model's context.*set model\.init_args\.chunk_size"
    ):
        fit(tmp_path, tiny_model_dir, claims_file(tmp_path, problems=12), chunk_size=None)


def test_iterative_finetuning_trains_on_earlier_chunks_before_labelling_the_next(tmp_path, tiny_model_dir):
    FINETUNE_CALLS.clear()
    settings = IterativeFineTuning(function=f"{__name__}.fake_finetune")
    module, trainer = fit(tmp_path, tiny_model_dir, claims_file(tmp_path, problems=6), finetune=settings, K=2)
    assert len(FINETUNE_CALLS) == 2  # before chunks 2 and 3
    assert [len(rows) for _, rows in FINETUNE_CALLS] == [4, 8]  # chunks 1..j, every labelled claim
    assert all(
        initial == str(tiny_model_dir) for initial, _ in FINETUNE_CALLS
    )  # always from the initial model
    assert {row["completion"] for _, rows in FINETUNE_CALLS for row in rows} <= {" True", " False"}
    assert module.finished[2]["model"] == str(tiny_model_dir) + "/"
    assert (Path(trainer.log_dir) / "finetune" / "round1" / "rows.jsonl").is_file()


def test_sft_rows_skip_unlabelled_claims():
    assert sft_rows(["a", "b", "c"], [1, None, 0]) == [
        {"prompt": "a", "completion": " True"},
        {"prompt": "c", "completion": " False"},
    ]
