"""Rewards by name: the shared table, a method's own table and dotted paths (no table is filled by an import),
and the checks at the boundary (shape, dtype, ±inf, a raising function) as one-line errors naming the reward;
NaN passes through as "not applicable"."""

import math

import pytest
import torch

from metalight.cli import main
from metalight.errors import ConfigError, RewardError
from metalight.methods.rewards import REWARDS, check_reward, resolve_reward, score_reward, token_f1_reward


def raising(prompts, completions, records):
    """A reward with a bug: a KeyError from inside the function."""
    return torch.tensor([{"a": 1.0}["b"] for _ in completions])


def constant_half(prompts, completions, records):
    return torch.full((len(completions),), 0.5)


def test_names_come_from_the_tables_given_and_dotted_paths():
    import metalight.methods.esma.rewards as esma

    assert set(REWARDS) == {"alias_match", "exact_match", "token_f1"}  # importing ESMA added nothing
    assert resolve_reward("token_f1") is token_f1_reward
    assert resolve_reward("esma", esma.ESMA_REWARDS) is esma.esma_reward
    assert resolve_reward("metalight.methods.esma.rewards.esma_reward") is esma.esma_reward
    with pytest.raises(ConfigError, match=r"^unknown reward 'nope'; use a known name"):
        resolve_reward("nope")
    with pytest.raises(ConfigError, match=r"^reward 'metalight.no_such_module.fn': cannot import it"):
        resolve_reward("metalight.no_such_module.fn")
    with pytest.raises(ConfigError, match=r"^reward 'math.pi' is a float, not a function"):
        resolve_reward("math.pi")


def test_values_become_float32_and_nan_passes_as_not_applicable():
    values = check_reward("f", [1, 0, 2], 3)
    assert values.dtype == torch.float32 and values.tolist() == [1.0, 0.0, 2.0]
    assert check_reward("f", torch.tensor([True, False]), 2).tolist() == [1.0, 0.0]
    nan = check_reward("f", [0.5, float("nan")], 2)
    assert nan[0] == 0.5 and math.isnan(nan[1])


@pytest.mark.parametrize(
    "values,rows,message",
    [
        (
            [0.0, float("inf"), float("-inf")],
            3,
            r"^reward 'r' returned ±inf for completions \[1, 2\]; return a finite",
        ),
        (
            torch.zeros(2, 1),
            2,
            r"^reward 'r' returned shape \(2, 1\); it must return one value per completion, "
            r"shape \(2,\)$",
        ),
        ([1.0, 2.0], 3, r"^reward 'r' returned shape \(2,\); .* shape \(3,\)$"),
        (torch.tensor([1 + 1j, 0j]), 2, r"^reward 'r' returned dtype torch.complex64; return real numbers"),
        (["1.0", "0.0"], 2, r"^reward 'r' returned list that is not numbers"),
    ],
)
def test_unusable_values_are_one_line_errors_naming_the_reward(values, rows, message):
    with pytest.raises(RewardError, match=message) as caught:
        check_reward("r", values, rows)
    assert "\n" not in str(caught.value)


def test_an_exception_inside_a_reward_is_one_line_naming_it():
    with pytest.raises(
        RewardError, match=r"^reward 'raising' raised KeyError: 'b'; fix the reward function"
    ) as err:
        score_reward("raising", raising, ["p"], ["c"], [None])
    assert isinstance(err.value.__cause__, KeyError)  # Python callers keep the original traceback
    assert score_reward("half", constant_half, ["p", "q"], ["c", "d"], [None, None]).tolist() == [0.5, 0.5]


def test_cli_reports_a_failing_grpo_reward_in_one_line(tmp_path, tiny_model_dir, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--config",
                "configs/grpo/fanoutqa_accuracy.yaml",
                "--model.init_args.model",
                str(tiny_model_dir),
                "--model.init_args.rewards",
                '{"tests.methods.test_reward_registry.raising": 1.0}',
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
                "--trainer.logger.init_args.save_dir",
                str(tmp_path),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "error: reward 'raising' raised KeyError: 'b'; fix the reward function or remove it from the config"
    )
    assert not any("Traceback" in line for line in err)
