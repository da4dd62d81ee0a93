"""The CLI's progress bar: step-bounded runs get a readable train label; a config's own bar or
``enable_progress_bar: false`` is respected."""

from types import SimpleNamespace

import pytest
from lightning.pytorch import LightningDataModule
from lightning.pytorch.callbacks import TQDMProgressBar

from metalight.callbacks.progress import StepAwareProgressBar
from metalight.cli import TRAINER_DEFAULTS, ConciseArgumentParser, MetalightCLI
from metalight.methods.base import MetacognitionModule


def _label(max_epochs, max_steps):
    bar = StepAwareProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps)
    return bar._get_train_description(0).strip()


def test_step_bounded_runs_name_their_step_budget_not_epoch_minus_two():
    assert _label(-1, 12) == "Epoch 0 · max 12 steps"
    assert _label(-1, -1) == "Epoch 0"
    assert _label(3, -1) == "Epoch 0/2"  # epoch-bounded runs keep Lightning's label


def _cli(tmp_path, model_dir, *args):
    return MetalightCLI(
        MetacognitionModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        trainer_defaults=TRAINER_DEFAULTS,
        parser_class=ConciseArgumentParser,
        run=False,
        args=[
            "--config",
            "configs/quickstart.yaml",
            "--model.init_args.model",
            str(model_dir),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            *args,
        ],
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        ([], StepAwareProgressBar),
        (["--trainer.enable_progress_bar", "false"], type(None)),
        (["--trainer.callbacks+=lightning.pytorch.callbacks.TQDMProgressBar"], TQDMProgressBar),
    ],
)
def test_the_cli_adds_its_bar_only_when_none_is_configured(tmp_path, tiny_model_dir, args, expected):
    cli = _cli(tmp_path, tiny_model_dir, *args)
    assert type(cli.trainer.progress_bar_callback) is expected
