"""SFTModule end to end (`cli.py fit` per target builder, tiny model), its schedule, and its config errors."""

import json
from functools import partial

import pytest
import torch
from lightning.pytorch import Callback

from metalight.cli import main
from metalight.errors import ConfigError
from metalight.methods.optim import WarmupDecay, lr_factor
from metalight.methods.sft.module import SFTModule
from metalight.methods.sft.optim import SFTAdamW
from tests.report_keys import assert_report_keys


def write_pairs(path, n=12):
    with path.open("w") as handle:
        for i in range(n):
            row = {"prompt": f"What is {i} plus {i}?", "completion": str(2 * i), "id": f"q{i}"}
            handle.write(json.dumps(row) + "\n")
    return path


def only_run(root):
    (run,) = [p for p in root.rglob("version_*") if p.is_dir()]
    return run


def test_prompt_completion_lora_fit_exports_the_merged_model(tmp_path, tiny_model_dir):
    data = write_pairs(tmp_path / "pairs.jsonl")
    cli = main(
        [
            "fit",
            "--config",
            "configs/sft/prompt_completion.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--data.init_args.path",
            str(data),
            "--data.init_args.eval_source",
            "null",
            "--data.init_args.val_fraction",
            "0.25",
            "--data.init_args.batch_size",
            "3",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
            "--trainer.log_every_n_steps",
            "1",
        ]
    )
    run = only_run(tmp_path / "runs")
    assert {
        "train/loss",
        "train/token_accuracy",
        "train/tokens_seen",
        "val/loss",
        "val/token_accuracy",
    } <= set(cli.trainer.callback_metrics)
    assert cli.trainer.global_step == 3  # 9 training pairs, batch 3
    assert (run / "hf" / "model.safetensors").is_file() and (run / "config.yaml").is_file()
    (ckpt,) = (run / "checkpoints").glob("*.ckpt")
    state = torch.load(ckpt, weights_only=False)["state_dict"]
    assert state and all("lora_" in k for k in state)  # adapter-only checkpoint


def test_knowledge_fit_logs_training_and_dual_prompt_metrics(tmp_path, tiny_model_dir):
    cli = main(
        [
            "fit",
            "--config",
            "configs/sft/knowledge_quickstart.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--trainer.max_epochs",
            "1",
            "--trainer.check_val_every_n_epoch",
            "1",
            "--data.init_args.max_samples",
            '{"train": 4, "val": 3}',
            "--data.init_args.batch_size",
            "2",
            "--model.init_args.evaluation.max_new_tokens",
            "3",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    run = only_run(tmp_path)
    report = json.loads((run / "report.json").read_text())
    assert report["n"] == 3 and report["targets"]["builder"] == "knowledge" and report["method"] == "sft"
    assert_report_keys(report, "sft_knowledge")
    logged = set(cli.trainer.callback_metrics)
    assert {"train/loss", "val/accuracy", "val/auroc_type2", "val/yes_ratio"} <= logged


def test_meta_answer_fit_labels_online(tmp_path, tiny_model_dir):
    cli = main(
        [
            "fit",
            "--config",
            "configs/sft/meta_answer_quickstart.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--data.init_args.max_samples",
            '{"train": 4, "val": 2}',
            "--data.init_args.batch_size",
            "2",
            "--model.init_args.evaluation.max_new_tokens",
            "3",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    metrics = cli.trainer.callback_metrics
    assert {"train/loss", "train/direct_accuracy", "train/yes_target_rate", "val/dprime_type2"} <= set(
        metrics
    )
    assert float(metrics["train/yes_target_rate"]) == 0.0  # a random model answers nothing correctly
    assert (only_run(tmp_path) / "report.json").is_file()


class LRs(Callback):
    def __init__(self):
        self.lrs = []

    def on_train_batch_start(self, trainer, *args):
        self.lrs.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_schedule_per_epoch_restarts_the_warmup(tmp_path, tiny_model_dir):
    from lightning.pytorch import Trainer

    from metalight.data.sources.prompt_completion import PromptCompletionDataModule

    lrs = LRs()
    module = SFTModule(
        model=str(tiny_model_dir),
        optimizer=partial(SFTAdamW, lr=1.0),
        lr_scheduler=partial(WarmupDecay, warmup_ratio=0.5),
        schedule_per_epoch=True,
    )
    data = PromptCompletionDataModule(path=str(write_pairs(tmp_path / "p.jsonl", 8)), batch_size=2)
    Trainer(
        max_epochs=2,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[lrs],
    ).fit(module, data)
    # 4 steps per epoch, 2 of warm-up: 0, 0.5, then linear decay 1.0, 0.5; again from 0 in epoch 2
    assert lrs.lrs == pytest.approx([0.0, 0.5, 1.0, 0.5] * 2)
    assert len(module.trainer.optimizers[0].state) > 0


def test_lr_factor_by_hand():
    assert [lr_factor(s, 10, 0.2, "linear") for s in (0, 1, 2, 6, 10)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    assert lr_factor(6, 10, 0.2, "cosine") == pytest.approx(0.5)
    assert lr_factor(9, 10, 0.0, "constant") == 1.0 and lr_factor(0, None, 0.0, "linear") == 1.0


def test_config_errors_name_the_key_and_fix(tiny_model_dir):
    with pytest.raises(ConfigError, match="export: adapter needs `lora:`"):
        SFTModule(export="adapter")
    module = SFTModule(model=str(tiny_model_dir))
    from metalight.data.records import QARecord

    with pytest.raises(ConfigError, match="targets.builder: knowledge or meta_answer"):
        module.training_examples([QARecord("a", "q?", ["x"])])


@pytest.mark.embedded
def test_embedded_model_trains_with_lora_and_exports_merged(tmp_path):
    from metalight.models.loading import load_model

    cli = main(
        [
            "fit",
            "--config",
            "configs/sft/knowledge_quickstart.yaml",
            "--trainer.max_epochs",
            "1",
            "--trainer.check_val_every_n_epoch",
            "1",
            "--data.init_args.max_samples",
            '{"train": 4, "val": 2}',
            "--data.init_args.batch_size",
            "2",
            "--model.init_args.evaluation.max_new_tokens",
            "8",
            "--model.init_args.export",
            "merged",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    run = only_run(tmp_path)
    assert cli.trainer.global_step == 2 and float(cli.trainer.callback_metrics["train/loss"]) < 20
    exported, _ = load_model(str(run / "hf"))  # the embedded model's GGUF origin does not block export
    ids = torch.tensor([[1, 2, 3, 4]])
    cli.model.model.eval()  # LoRA dropout is active in train mode; merging reorders fp32 sums (~3e-4)
    with torch.no_grad():
        torch.testing.assert_close(
            exported(input_ids=ids).logits, cli.model.model(input_ids=ids).logits, atol=1e-3, rtol=1e-3
        )


def test_competence_sft_config_trains_meta_answers_with_replayed_direct_answers(tmp_path, varied_model_dir):
    cli = main(
        [
            "fit",
            "--config",
            "configs/competence/sft_meta_lora.yaml",
            "--model.init_args.model",
            str(varied_model_dir),
            "--data.init_args.per_level",
            "{train: 1, val: 1}",
            "--data.init_args.levels",
            "[1, 8]",
            "--data.init_args.batch_size",
            "2",
            "--model.init_args.evaluation.max_new_tokens",
            "3",
            "--trainer.max_epochs",
            "1",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    module = cli.model
    assert module.targets.replay_answers and module.lora is not None
    module.log = lambda *args, **kwargs: None  # outside the fit loop nothing may be logged
    examples = module.training_examples(cli.datamodule.records("train"))
    assert [e.meta["target"] for e in examples] == ["no", "no", "replay", "replay"]
    with pytest.raises(ConfigError, match="targets.replay_answers replays the answers"):
        SFTModule(targets={"builder": "knowledge", "replay_answers": True})
