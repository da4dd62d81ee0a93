"""Item 7 of issue 32: nothing measured is never success. A validate that ran no batch (limit_val_batches 0)
is the n = 0 error, and a GRPO run whose rewards are all NaN stops as ESMA does instead of training on
loss 0."""

import torch

from tests.reliability.conftest import ROOT, eval_args, run_main


def all_nan(prompts, completions, records):
    """A reward that is 'not applicable' to every completion."""
    return torch.full((len(completions),), float("nan"))


def test_a_validate_that_runs_no_batch_is_the_n0_error(tmp_path, tiny_model_dir, trivia20, capsys):
    code, errors = run_main(
        eval_args(
            tiny_model_dir,
            tmp_path,
            "--data.init_args.path",
            str(trivia20),
            "--trainer.limit_val_batches",
            "0",
        ),
        capsys,
    )
    assert (code, errors) == (
        2,
        [
            "error: the val pass evaluated no rows (n = 0): check the data source, max_samples, "
            "limit_val_batches and (API models) on_failure"
        ],
    )
    assert not (tmp_path / "eval-triviaqa").exists() or not any((tmp_path / "eval-triviaqa").iterdir())


def test_grpo_with_every_reward_nan_stops_instead_of_training_on_loss_0(tmp_path, tiny_model_dir, capsys):
    code, errors = run_main(
        [
            "fit",
            "--config",
            str(ROOT / "configs/grpo/fanoutqa_accuracy.yaml"),
            "--model.init_args.model",
            str(tiny_model_dir),
            "--model.init_args.rewards",
            '{"tests.reliability.test_nothing_measured.all_nan": 1.0}',
            "--model.init_args.num_generations",
            "2",
            "--model.init_args.max_completion_length",
            "2",
            "--data.init_args.batch_size",
            "2",
            "--data.init_args.max_samples",
            '{"train": 2, "val": 2}',
            "--trainer.max_steps",
            "1",
            "--trainer.limit_val_batches",
            "0",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.default_root_dir",
            str(tmp_path),
        ],
        capsys,
    )
    assert (code, errors) == (
        2,
        [
            "error: step 0: every reward (all_nan) is NaN for all 4 completions, so there is "
            "nothing to learn from (loss 0); NaN means "
            "'not applicable': check the reward functions (model.init_args.rewards)"
        ],
    )
