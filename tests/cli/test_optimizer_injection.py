"""``model.init_args.optimizer`` / ``lr_scheduler`` reach every method that trains: a config fragment with SGD
and a halving StepLR fits each on the tiny model, and the optimizer's learning rate after N steps is
0.1 · 0.5^N. A top-level ``optimizer:`` is a one-line error naming the key to move it to; ICM refuses an
optimizer."""

import pytest
import torch

from metalight.cli import main
from metalight.errors import ConfigError
from metalight.methods.base import EvalModule
from metalight.methods.optim import WarmupDecay

FRAGMENT = """\
model:
  init_args:
    optimizer:
      class_path: torch.optim.SGD
      init_args: {lr: 0.1}
    lr_scheduler:
      class_path: torch.optim.lr_scheduler.StepLR
      init_args: {step_size: 1, gamma: 0.5}
"""
QUIET = [
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.enable_model_summary",
    "false",
    "--trainer.limit_val_batches",
    "0",
]


def statements(tmp_path):
    rows = [
        f"Fresh apples number {i} taste good.,1" if i % 2 == 0 else f"Rotten bananas {i} are tasty.,0"
        for i in range(24)
    ]
    path = tmp_path / "statements.csv"
    path.write_text("statement,label\n" + "\n".join(rows) + "\n")
    return path


def pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        "".join(f'{{"prompt": "What is {i} plus {i}?", "completion": "{2 * i}"}}\n' for i in range(6))
    )
    return path


METHODS = {
    "sft": lambda tiny, tmp: [
        "--config",
        "configs/sft/prompt_completion.yaml",
        "--data.init_args.path",
        str(pairs(tmp)),
        "--data.init_args.eval_source",
        "null",
        "--data.init_args.batch_size",
        "2",
        "--model.init_args.export",
        "none",
        "--trainer.max_steps",
        "2",
    ],
    "grpo": lambda tiny, tmp: [
        "--config",
        "configs/grpo/fanoutqa_accuracy.yaml",
        "--model.init_args.num_generations",
        "2",
        "--model.init_args.max_completion_length",
        "2",
        "--data.init_args.batch_size",
        "2",
        "--data.init_args.max_samples",
        '{"train": 4, "val": 2}',
        "--trainer.max_steps",
        "2",
    ],
    "metaconf": lambda tiny, tmp: [
        "--config",
        "configs/grpo/quickstart.yaml",
        "--model.init_args.judge.init_args.model",
        tiny,
        "--model.init_args.num_generations",
        "2",
        "--model.init_args.max_completion_length",
        "2",
        "--data.init_args.max_samples",
        '{"train": 4, "val": 2}',
        "--trainer.max_steps",
        "2",
    ],
    "esma": lambda tiny, tmp: [
        "--config",
        "configs/esma/quickstart.yaml",
        "--model.init_args.population_size",
        "2",
        "--model.init_args.num_data_per_iteration",
        "2",
        "--model.init_args.evaluation.max_new_tokens",
        "2",
        "--trainer.max_steps",
        "2",
    ],
    "probes": lambda tiny, tmp: [
        "--config",
        "configs/probes/true_false.yaml",
        "--model.init_args.cache_dir",
        str(tmp / "cache"),
        "--model.init_args.pcs",
        "[1]",
        "--data.class_path",
        "metalight.data.sources.true_false.TrueFalseDataModule",
        "--data.init_args.path",
        str(statements(tmp)),
        "--data.init_args.batch_size",
        "8",
        "--trainer.max_epochs",
        "1",
    ],
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_fits_with_the_configured_optimizer_and_schedule(method, tmp_path, tiny_model_dir):
    fragment = tmp_path / "optimizer.yaml"
    fragment.write_text(FRAGMENT)
    args = METHODS[method](str(tiny_model_dir), tmp_path)
    cli = main(
        [
            "fit",
            *args,
            "--config",
            str(fragment),
            "--model.init_args.model",
            str(tiny_model_dir),
            *QUIET,
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
        ]
    )
    trainer = cli.trainer
    (optimizer,) = trainer.optimizers
    (schedule,) = trainer.lr_scheduler_configs
    assert type(optimizer) is torch.optim.SGD and type(schedule.scheduler) is torch.optim.lr_scheduler.StepLR
    assert trainer.global_step >= 2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5**trainer.global_step)


def test_metaconf_paper_config_starts_training(tmp_path, tiny_model_dir):
    """configs/grpo/metaconf.yaml (formerly a crash: its top-level optimizer saw no parameters) with a tiny
    model, no remote judge, and 2 optimizer steps: AdamW lr 1e-6 under a 3% warm-up + cosine schedule."""
    cli = main(
        [
            "fit",
            "--config",
            "configs/grpo/metaconf.yaml",
            "--model.init_args.model",
            str(tiny_model_dir),
            "--model.init_args.dtype",
            "float32",
            "--model.init_args.judge",
            "null",
            "--model.init_args.reflection_weight",
            "0",
            "--model.init_args.lora.r",
            "2",
            "--model.init_args.lora.alpha",
            "4",
            "--model.init_args.max_completion_length",
            "2",
            "--model.init_args.num_generations",
            "2",
            "--data.init_args.max_samples",
            '{"train": 4, "val": 2}',
            "--trainer.max_steps",
            "2",
            "--trainer.accumulate_grad_batches",
            "1",
            *QUIET,
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    trainer = cli.trainer
    scheduler = trainer.lr_scheduler_configs[0].scheduler
    assert trainer.global_step == 2 and isinstance(scheduler, WarmupDecay)
    # 2 steps, warm-up ceil(0.03 · 2) = 1: factors 0 (step 0), 1 (step 1), then cos(π)/2 + 1/2 = 0 at step 2
    assert [scheduler.factor(s) for s in (0, 1, 2)] == pytest.approx([0.0, 1.0, 0.0])
    assert (
        trainer.optimizers[0].defaults["lr"] == 1e-6 and trainer.optimizers[0].defaults["weight_decay"] == 0.0
    )


@pytest.mark.parametrize("key", ["optimizer", "lr_scheduler"])
def test_a_top_level_optimizer_is_a_one_line_error_naming_where_it_goes(key, tmp_path, capsys):
    config = tmp_path / "top.yaml"
    config.write_text(f"{key}:\n  class_path: torch.optim.SGD\n  init_args: {{lr: 0.1}}\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "configs/sft/knowledge_quickstart.yaml", "--config", str(config)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"error: a top-level `{key}:` is not read "
        "(each method builds its optimizer once its model is loaded): "
        f"move it under model.init_args.{key} (same class_path and init_args)"
    )


def test_icm_refuses_an_optimizer(tmp_path, capsys):
    fragment = tmp_path / "optimizer.yaml"
    fragment.write_text(FRAGMENT)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", "configs/icm/gsm8k_cpu.yaml", "--config", str(fragment)])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .splitlines()[-1]
        .startswith(
            "error: ICMModule searches labels and trains no weights: remove model.init_args.optimizer"
        )
    )


def test_a_measurement_module_has_no_optimizer():
    with pytest.raises(ConfigError, match=r"^EvalModule has no optimizer: it only measures"):
        EvalModule().configure_optimizers()
