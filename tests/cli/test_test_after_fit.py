"""``test_after_fit: true`` runs the test loop on the trained model at the end of ``cli.py fit``."""

import pytest

from metalight.cli import main

ESMA = [
    "fit",
    "--config",
    "configs/esma/quickstart.yaml",
    "--model.init_args.population_size",
    "2",
    "--model.init_args.num_data_per_iteration",
    "2",
    "--model.init_args.evaluation.max_new_tokens",
    "2",
    "--data.init_args.max_samples",
    '{"val": 2, "test": 3}',
    "--trainer.max_steps",
    "1",
    "--trainer.val_check_interval",
    "1",
]


@pytest.mark.parametrize("flag", ["true", "false"])
def test_fit_runs_test_on_the_trained_model_only_when_asked(tiny_model_dir, tmp_path, flag):
    cli = main(
        [
            *ESMA,
            "--model.init_args.model",
            str(tiny_model_dir),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--test_after_fit",
            flag,
        ]
    )
    tested = any(key.startswith("test/") for key in cli.trainer.callback_metrics)
    assert tested == (flag == "true")
    assert cli.trainer.global_step == 1  # the test ran after training, on the trained weights
    if tested:
        assert {"test/accuracy", "test/dprime_type2"} <= set(cli.trainer.callback_metrics)
