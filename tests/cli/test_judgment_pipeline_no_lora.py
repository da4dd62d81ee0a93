"""The pipeline's ``no_lora`` switch: every phase fine-tunes all weights (no adapter) at the full-FT lr."""

import sys
from unittest import mock

import pytest
from lightning.pytorch import LightningDataModule

from metalight.cli import TRAINER_DEFAULTS, ConciseArgumentParser, MetalightCLI
from metalight.cli.judgment_pipeline import PHASES, KnowThyselfPipeline, PipelineSettings
from metalight.methods.base import MetacognitionModule


def parsed_module(config, args):
    """The SFTModule a phase's ``cli.py fit`` would train (parsed and built, not run)."""
    with mock.patch.object(sys, "argv", sys.argv[:1]):
        cli = MetalightCLI(
            MetacognitionModule,
            LightningDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            trainer_defaults=TRAINER_DEFAULTS,
            parser_class=ConciseArgumentParser,
            args=["--config", config, *args],
            run=False,
        )
    return cli.model


def _lr(module) -> float:
    """The learning rate the module's optimizer is built with (recorded as class_path + init_args)."""
    return module.hparams.optimizer["init_args"]["lr"]


@pytest.mark.parametrize("no_lora", [False, True])
def test_no_lora_switches_every_phase_to_full_fine_tuning(tmp_path, no_lora):
    settings = PipelineSettings(
        out=str(tmp_path / "exp"),
        judgment_config="configs/judgment/pipeline_quickstart.yaml",
        knowledge_config="configs/judgment/pipeline_knowledge_quickstart.yaml",
        no_lora=no_lora,
        full_lr=2e-5,
    )
    pipeline = KnowThyselfPipeline(settings)
    for phase in PHASES:
        config, args, _ = pipeline.phase_args(phase)
        module = parsed_module(config, args)
        if no_lora:
            assert module.lora is None and _lr(module) == 2e-5 and module.hparams.export == "full"
        else:
            assert module.lora is not None and _lr(module) == 1e-4
            assert module.hparams.export == ("full" if phase == "phase2_knowledge" else "adapter")


def test_an_explicit_learning_rate_beats_the_switch(tmp_path):
    settings = PipelineSettings(
        out=str(tmp_path / "exp"),
        judgment_config="configs/judgment/pipeline_quickstart.yaml",
        no_lora=True,
        judgment_args=["--model.init_args.optimizer.lr", "3e-6"],
    )
    config, args, _ = KnowThyselfPipeline(settings).phase_args("phase1_judgment")
    assert _lr(parsed_module(config, args)) == 3e-6
