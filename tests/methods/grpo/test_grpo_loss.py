"""GRPO math by hand and against TRL 1.16's formulas: advantages (TRL's ``nanstd``), aggregations, settings
checks. The loss family against TRL's own ``_compute_loss`` is in ``test_grpo_trl_parity.py``."""

import pytest
import torch
from trl.trainer.utils import nanstd as trl_nanstd

from metalight.methods.grpo.advantages import group_advantages, nanstd
from metalight.methods.grpo.loss import LOSS_VARIANTS, LossSettings, Normalisers, grpo_loss, k3_kl
from metalight.methods.grpo.rollout import token_logprobs

R, C, V, MAX_LEN = 6, 5, 11, 7


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(R, C, V, generator=g) * 2
    ids = torch.randint(0, V, (R, C), generator=g)
    lengths = torch.tensor([5, 3, 1, 4, 5, 2])
    mask = (torch.arange(C)[None] < lengths[:, None]).long()
    advantages = torch.randn(R, generator=g)
    return logits, ids, mask, advantages


def test_on_policy_ratio_is_one_with_policy_gradient():
    logits, ids, mask, advantages = batch(1)
    logits.requires_grad_(True)
    logps, _ = token_logprobs(logits, ids)
    terms = grpo_loss(
        logps,
        None,
        None,
        advantages,
        mask,
        LossSettings(loss_type="grpo"),
        Normalisers(MAX_LEN, float(mask.sum())),
    )
    assert torch.allclose(terms.ratio, torch.ones_like(terms.ratio))
    # loss = -mean_i(A_i · mean_t logp)'s gradient with the value of -mean_i(A_i)
    assert terms.loss.item() == pytest.approx(-advantages.mean().item(), abs=1e-6)


def test_k3_kl_is_zero_at_the_reference_and_positive_elsewhere():
    logps = torch.tensor([-1.0, -2.0, -0.5])
    assert torch.equal(k3_kl(logps, logps), torch.zeros(3))
    assert (k3_kl(logps, logps + torch.tensor([0.3, -0.3, 1.0])) > 0).all()
    assert k3_kl(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(torch.e - 2)


def test_aggregations_by_hand():
    per_token, mask = torch.ones(2, 3), torch.tensor([[1, 1, 0], [1, 0, 0]])
    norm = Normalisers(
        max_completion_length=10, global_active_tokens=12, num_processes=4, steps_per_generation=2
    )
    aggregate = {name: variant[1] for name, variant in LOSS_VARIANTS.items()}
    assert aggregate["dapo"](per_token, mask, norm).item() == pytest.approx(3 / (12 / 4 / 2))
    assert aggregate["dr_grpo"](per_token, mask, norm).item() == pytest.approx(3 / (2 * 10))
    assert aggregate["bnpo"](per_token, mask, norm).item() == pytest.approx(1.0)
    assert aggregate["grpo"](per_token, mask, norm).item() == pytest.approx(1.0)
    assert aggregate["luspo"](per_token, mask, norm).item() == pytest.approx(
        1.5
    )  # mean of token sums 2 and 1


@pytest.mark.parametrize(
    "settings,message",
    [
        ({"loss_type": "ppo"}, "loss_type 'ppo' is not one of grpo, bnpo"),
        ({"loss_type": "luspo"}, "luspo' needs importance_sampling_level: sequence"),
        ({"loss_type": "cispo"}, "cispo' needs epsilon_high"),
        ({"importance_sampling_level": "batch"}, "importance_sampling_level 'batch'"),
    ],
)
def test_settings_trl_does_not_run_are_named(settings, message):
    (problem,) = LossSettings(**settings).problems()
    assert message in problem
    assert LossSettings().problems() == []


# ---- advantages -------------------------------------------------------------------------------------------
def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0], [0.0], [0.0], [0.0], [2.0], [2.0]])
    adv = group_advantages(rewards, torch.tensor([1.0]), num_generations=3)
    std1 = torch.tensor([1.0, 0.0, 0.0]).std().item()  # Bessel: sqrt(1/3)
    expected = [
        2 / 3 / (std1 + 1e-4),
        -1 / 3 / (std1 + 1e-4),
        -1 / 3 / (std1 + 1e-4),
        -4 / 3 / (1.1547005 + 1e-4),
        2 / 3 / (1.1547005 + 1e-4),
        2 / 3 / (1.1547005 + 1e-4),
    ]
    assert adv.values.tolist() == pytest.approx(expected, rel=1e-5)
    assert adv.std_is_zero.tolist() == [False] * 6
    same = group_advantages(torch.ones(4, 1), torch.tensor([1.0]), 2)
    assert same.values.tolist() == [0.0] * 4 and same.std_is_zero.all()


def test_scale_rewards_none_and_batch():
    rewards = torch.tensor([[1.0], [0.0], [3.0], [1.0]])
    none = group_advantages(rewards, torch.tensor([1.0]), 2, scale_rewards="none")
    assert none.values.tolist() == [0.5, -0.5, 1.0, -1.0]
    batch_std = rewards.flatten().std().item()
    scaled = group_advantages(rewards, torch.tensor([1.0]), 2, scale_rewards="batch")
    assert scaled.values.tolist() == pytest.approx([v / (batch_std + 1e-4) for v in none.values.tolist()])


def test_weighted_sum_then_normalize_and_normalize_then_sum_follow_trl():
    g = torch.Generator().manual_seed(3)
    table, weights, G = torch.rand(8, 2, generator=g), torch.tensor([1.0, 0.6]), 4
    rewards = (table * weights).sum(1)
    grouped = rewards.view(-1, G)
    expected = (
        (grouped - grouped.mean(1, keepdim=True)) / (trl_nanstd(grouped, dim=1)[:, None] + 1e-4)
    ).flatten()
    adv = group_advantages(table, weights, G)
    torch.testing.assert_close(adv.values, expected)
    torch.testing.assert_close(adv.rewards, rewards)
    # GDPO, as TRL: per-function group normalisation, weighted sum, batch normalisation
    per = table.view(-1, G, 2)
    normed = ((per - per.mean(1, keepdim=True)) / (trl_nanstd(per, dim=1, keepdim=True) + 1e-4)).view(-1, 2)
    summed = (normed * weights).sum(1)
    expected = (summed - summed.mean()) / (trl_nanstd(summed) + 1e-4)
    torch.testing.assert_close(
        group_advantages(table, weights, G, aggregation="normalize_then_sum").values, expected
    )


def test_nanstd_matches_trl():
    x = torch.tensor([[1.0, 2.0, float("nan")], [3.0, 3.0, 3.0], [1.0, float("nan"), float("nan")]])
    torch.testing.assert_close(nanstd(x, dim=1), trl_nanstd(x, dim=1), equal_nan=True)
    torch.testing.assert_close(nanstd(x), trl_nanstd(x))


def test_rewards_that_do_not_split_into_groups_are_rejected():
    with pytest.raises(ValueError, match="num_generations=4"):
        group_advantages(torch.zeros(6, 1), torch.ones(1), 4)
