"""GRPOModule end to end on a tiny random Llama: weights move, every TRL metric is logged; reference models;
bad input (G < 2, a reward with a wrong shape, ±inf or an exception) fails with a one-line message; NaN
rewards mean "not applicable"."""

from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metalight.data.records import QARecord
from metalight.data.sources.fanoutqa import FanOutQASingleHopDataModule
from metalight.errors import ConfigError, RewardError
from metalight.methods.grpo.module import GRPOModule
from metalight.methods.grpo.optim import GRPOAdamW
from metalight.methods.grpo.rollout import completion_logprobs
from metalight.models.loading import load_model
from metalight.models.lora import LoraSettings

TRL_METRICS = {
    "reward",
    "reward_std",
    "rewards/length/mean",
    "rewards/alias_match/mean",
    "frac_reward_zero_std",
    "completions/mean_length",
    "completions/clipped_ratio",
    "kl",
    "entropy",
    "clip_ratio/low_mean",
    "clip_ratio/high_mean",
    "clip_ratio/region_mean",
    "loss",
    "time/step",
    "num_tokens",
    "time/generation",
    "time/forward",
    "time/backward_optimizer",
}


def length(prompts, completions, records):
    """Toy reward: longer completions are better (varies within a group, so advantages are not 0)."""
    return torch.tensor([len(c) / 40 for c in completions])


def fit(module, tmp_path, steps=2):
    data = FanOutQASingleHopDataModule(
        strict=False, batch_size=2, max_samples={"train": 8, "val": 2, "test": 2}
    )
    logger = TensorBoardLogger(tmp_path, name="grpo", default_hp_metric=False)
    trainer = L.Trainer(
        max_steps=steps,
        logger=logger,
        enable_checkpointing=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    trainer.fit(module, data)
    events = EventAccumulator(str(logger.log_dir))
    events.Reload()
    return {tag[len("train/") :]: [e.value for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.parametrize(
    "settings",
    [
        {"loss_type": "dapo", "num_iterations": 2},
        {"loss_type": "grpo", "lora": LoraSettings(r=4, alpha=8, dropout=0.0)},
    ],
    ids=["full_mu2_dapo", "lora_grpo"],
)
def test_two_steps_change_the_weights_and_log_every_metric(tiny_model_dir, tmp_path, settings):
    module = GRPOModule(
        model=str(tiny_model_dir),
        num_generations=4,
        max_completion_length=6,
        beta=0.04,
        rewards={"tests.methods.grpo.test_grpo.length": 1.0, "alias_match": 0.5},
        optimizer=partial(GRPOAdamW, lr=5e-3),
        **settings,
    )
    module.configure_model()
    before = {n: p.detach().clone() for n, p in module.model.named_parameters() if p.requires_grad}
    logged = fit(module, tmp_path)
    assert set(logged) >= TRL_METRICS, TRL_METRICS - set(logged)
    assert all(len(values) == 2 for values in logged.values())
    changed = [
        n for n, p in module.model.named_parameters() if p.requires_grad and not torch.equal(p, before[n])
    ]
    assert changed and len(changed) == len(before)
    assert (
        logged["kl"][0] == pytest.approx(0.0, abs=1e-6) and logged["kl"][1] > 0
    )  # moved away from the reference
    assert logged["completions/mean_length"] == [6.0, 6.0] and logged["completions/clipped_ratio"] == [
        1.0,
        1.0,
    ]
    assert logged["rewards/length/mean"][0] > 0 and logged["frac_reward_zero_std"][0] < 1
    if settings.get("num_iterations") == 2:  # the second step reuses the first rollout: no new generation
        assert logged["time/generation"][1] == 0.0 and logged["clip_ratio/region_mean"][1] >= 0


def test_lora_reference_is_the_adapter_disabled_model(tiny_model_dir):
    module = GRPOModule(
        model=str(tiny_model_dir), num_generations=2, beta=0.1, lora=LoraSettings(r=2, alpha=4)
    )
    module.configure_model()
    for name, p in module.model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)
    base, tokenizer = load_model(str(tiny_model_dir))
    from metalight.methods.grpo.rollout import Rollout

    rollout = Rollout([[5, 6, 7, 8], [5, 6, 9]], [[10, 11], [12]], ["a", "b"], torch.tensor([True, True]))
    reference = module.reference_logprobs(rollout)
    expected, _ = completion_logprobs(
        base, rollout.prompt_ids, rollout.completion_ids, tokenizer.pad_token_id
    )
    policy, _ = completion_logprobs(
        module.model, rollout.prompt_ids, rollout.completion_ids, tokenizer.pad_token_id
    )
    torch.testing.assert_close(reference, expected.detach())
    assert not torch.allclose(policy, expected)
    assert module._reference == ()  # no frozen copy is kept next to a LoRA model


def test_full_finetuning_keeps_a_frozen_copy_only_when_beta_is_set(tiny_model_dir):
    with_kl = GRPOModule(model=str(tiny_model_dir), num_generations=2, beta=0.01)
    with_kl.configure_model()
    (reference,) = with_kl._reference
    assert not any(p.requires_grad for p in reference.parameters())
    assert not any(k.startswith("_reference") for k in with_kl.state_dict())
    without = GRPOModule(model=str(tiny_model_dir), num_generations=2)
    without.configure_model()
    assert without._reference == ()


def test_fewer_than_two_generations_is_a_config_error():
    with pytest.raises(ConfigError, match="num_generations must be >= 2"):
        GRPOModule(num_generations=1)


@pytest.mark.parametrize(
    "reward,message",
    [
        (lambda p, c, r: torch.zeros(len(c) + 1), r"^reward 'bad' returned shape \(5,\); .* shape \(4,\)$"),
        (
            lambda p, c, r: torch.tensor([0.0, float("inf"), 1.0, 0.0]),
            r"^reward 'bad' returned ±inf for completions \[1\]",
        ),
        (
            lambda p, c, r: [r_.missing for r_ in r],
            r"^reward 'bad' raised AttributeError: 'QARecord' object has no",
        ),
    ],
)
def test_a_bad_reward_is_one_line_naming_the_function(tiny_model_dir, monkeypatch, reward, message):
    from metalight.methods import rewards as registry

    monkeypatch.setitem(registry.REWARDS, "bad", reward)
    module = GRPOModule(
        model=str(tiny_model_dir), num_generations=2, max_completion_length=2, rewards={"bad": 1.0}
    )
    module.configure_model()
    with pytest.raises(RewardError, match=message) as caught:
        module.make_rollout([QARecord("1", "Who?", ["x"]), QARecord("2", "What?", ["y"])])
    assert "\n" not in str(caught.value)


def test_a_nan_reward_means_not_applicable(tiny_model_dir, monkeypatch):
    """Row 1 has no applicable reward (NaN): its advantage is 0; the others are z-scored in their group."""
    from metalight.methods import rewards as registry

    monkeypatch.setitem(
        registry.REWARDS, "partial", lambda p, c, r: torch.tensor([1.0, float("nan"), 0.0, 2.0])
    )
    module = GRPOModule(
        model=str(tiny_model_dir), num_generations=2, max_completion_length=2, rewards={"partial": 1.0}
    )
    module.configure_model()
    rollout = module.make_rollout([QARecord("1", "Who?", ["x"]), QARecord("2", "What?", ["y"])])
    # group 1: [1, NaN] -> std NaN (one value) -> A = 0 for both; group 2: [0, 2] -> mean 1, std sqrt(2)
    expected = torch.tensor([0.0, 0.0, -1 / (2**0.5 + 1e-4), 1 / (2**0.5 + 1e-4)])
    assert torch.allclose(rollout.advantages.cpu(), expected, atol=1e-6)


def test_one_generation_serves_the_accumulated_micro_batches(tiny_model_dir, tmp_path, monkeypatch):
    module = GRPOModule(
        model=str(tiny_model_dir),
        num_generations=2,
        max_completion_length=3,
        rewards={"tests.methods.grpo.test_grpo.length": 1.0},
        optimizer=partial(GRPOAdamW, lr=5e-3),
    )
    generations = []
    generation_batch = module.generation_batch
    monkeypatch.setattr(
        module,
        "generation_batch",
        lambda records, parts: generations.append((len(records), parts)) or generation_batch(records, parts),
    )
    data = FanOutQASingleHopDataModule(strict=False, batch_size=2, max_samples={"train": 8})
    trainer = L.Trainer(
        max_steps=2,
        accumulate_grad_batches=2,
        logger=False,
        enable_checkpointing=False,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, data)
    # steps_per_generation defaults to the accumulation steps (TRL): 2 optimizer steps = 4 micro-batches from
    # 2 generation batches of 2 questions x 2 completions, each split in two
    assert generations == [(2, 2), (2, 2)]
    assert module.steps_per_generation() == 2


def test_steps_per_generation_must_divide_the_generation_batch(tiny_model_dir):
    module = GRPOModule(
        model=str(tiny_model_dir), num_generations=3, num_iterations=2, steps_per_generation=2
    )
    module.configure_model()
    with pytest.raises(
        ConfigError, match=r"steps_per_generation=2 does not divide the generation batch of 3 rows"
    ):
        module.generation_batch([QARecord("1", "Who?", ["x"])], parts=2)


def test_truncated_completions_leave_the_loss_when_asked():
    from metalight.methods.grpo.rollout import Rollout

    rollout = Rollout([[5], [5]], [[10, 11], [12]], ["a", "b"], torch.tensor([True, False]))
    masked = GRPOModule(num_generations=2, mask_truncated_completions=True).loss_mask(rollout)
    assert masked.tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert GRPOModule(num_generations=2).loss_mask(rollout).tolist() == [[1.0, 1.0], [1.0, 0.0]]


@pytest.mark.parametrize(
    "settings,message",
    [
        (
            {"loss_type": "ppo"},
            "loss_type 'ppo' is not one of grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo",
        ),
        ({"loss_type": "luspo"}, "loss_type 'luspo' needs importance_sampling_level: sequence"),
        ({"loss_type": "cispo"}, "loss_type 'cispo' needs epsilon_high"),
    ],
)
def test_loss_settings_trl_would_misread_are_one_line_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as error:
        GRPOModule(**settings)
    assert "\n" not in str(error.value)
