"""GRPO math against the installed TRL 1.16: ``GRPOTrainer._compute_loss`` itself is called on the same logits,
old / reference log-probs, advantages and masks; advantages against TRL's formula, recomputed by hand."""

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch
from trl import GRPOTrainer
from trl.trainer.utils import nanstd as trl_nanstd
from trl.trainer.utils import selective_log_softmax

from metalight.methods.grpo.loss import (
    LOSS_AGGREGATIONS,
    Normalisers,
    clip_fractions,
    group_advantages,
    grpo_loss,
    k3_kl,
    nanstd,
)
from metalight.methods.grpo.rollout import token_logprobs

R, C, V, MAX_LEN, TEMPERATURE = 6, 5, 11, 7, 0.7


def fake_trainer(logits, loss_type, beta, eps_low, eps_high):
    """The attributes ``GRPOTrainer._compute_loss`` reads, with the model forward replaced by fixed logits."""

    def per_token_logps(model, input_ids, attention_mask, logits_to_keep, **kwargs):
        ids = input_ids[:, -logits_to_keep:]
        logps = selective_log_softmax(logits, ids, temperature=TEMPERATURE)
        with torch.no_grad():
            scaled = logits / TEMPERATURE
            entropy = -(scaled.softmax(-1) * scaled.log_softmax(-1)).sum(-1)
        return logps, entropy, None

    accelerator = SimpleNamespace(num_processes=1, reduce=lambda t, reduction: t, gather=lambda t: t)
    return SimpleNamespace(
        _get_per_token_logps_and_entropies=per_token_logps, top_entropy_quantile=1.0, off_policy_mask_threshold=None,
        importance_sampling_level="token", beta=beta, loss_type=loss_type, epsilon_low=eps_low,
        epsilon_high=eps_high, use_vllm=False, vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True), current_gradient_accumulation_steps=1,
        max_completion_length=MAX_LEN, accelerator=accelerator, _entropy_bonus_enabled=False,
        aux_loss_enabled=False, _metrics={"train": defaultdict(list)},
        args=SimpleNamespace(use_bias_correction_kl=False, delta=None, steps_per_generation=1))


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(R, C, V, generator=g) * 2
    ids = torch.randint(0, V, (R, C), generator=g)
    lengths = torch.tensor([5, 3, 1, 4, 5, 2])
    mask = (torch.arange(C)[None] < lengths[:, None]).long()
    old = selective_log_softmax(logits, ids, TEMPERATURE) + 0.4 * torch.randn(R, C, generator=g)
    ref = selective_log_softmax(logits, ids, TEMPERATURE) + 0.3 * torch.randn(R, C, generator=g)
    advantages = torch.randn(R, generator=g)
    return logits, ids, mask, old, ref, advantages


@pytest.mark.parametrize("loss_type", sorted(LOSS_AGGREGATIONS))
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("off_policy", [False, True], ids=["on_policy", "old_logps"])
def test_loss_and_gradient_equal_trl(loss_type, beta, off_policy):
    logits, ids, mask, old, ref, advantages = batch()
    eps_low, eps_high = 0.2, 0.28
    trl_logits = logits.clone().requires_grad_(True)
    inputs = {"prompt_ids": torch.ones(R, 3, dtype=torch.long), "prompt_mask": torch.ones(R, 3, dtype=torch.long),
              "completion_ids": ids, "completion_mask": mask, "advantages": advantages,
              "num_items_in_batch": mask.sum(), "ref_per_token_logps": ref}
    if off_policy:
        inputs["old_per_token_logps"] = old
    trainer = fake_trainer(trl_logits, loss_type, beta, eps_low, eps_high)
    expected = GRPOTrainer._compute_loss(trainer, None, inputs)
    expected.backward()

    ours_logits = logits.clone().requires_grad_(True)
    logps, entropy = token_logprobs(ours_logits, ids, TEMPERATURE)
    norm = Normalisers(MAX_LEN, float(mask.sum()), 1)
    terms = grpo_loss(logps, old if off_policy else None, ref if beta else None, advantages, mask, loss_type, norm,
                      eps_low, eps_high, beta)
    terms.loss.backward()

    assert terms.loss.item() == pytest.approx(expected.item(), abs=1e-5)
    torch.testing.assert_close(ours_logits.grad, trl_logits.grad, atol=1e-6, rtol=1e-5)
    metrics = trainer._metrics["train"]
    fm = mask.float()
    assert (entropy * fm).sum().item() / fm.sum().item() == pytest.approx(metrics["entropy"][0], abs=1e-5)
    if beta:
        assert (terms.kl * fm).sum().item() / fm.sum().item() == pytest.approx(metrics["kl"][0], abs=1e-6)
    clipped = clip_fractions(terms.ratio.detach(), advantages, fm, eps_low, eps_high)
    for name in ("low", "high", "region"):
        ours = (clipped[name] * fm).sum().item() / fm.sum().item()
        assert ours == pytest.approx(metrics[f"clip_ratio/{name}_mean"][0], abs=1e-7)
    if off_policy:
        assert metrics["clip_ratio/region_mean"][0] > 0  # the test exercises clipping


def test_on_policy_ratio_is_one_with_policy_gradient():
    logits, ids, mask, _, _, advantages = batch(1)
    logits.requires_grad_(True)
    logps, _ = token_logprobs(logits, ids)
    terms = grpo_loss(logps, None, None, advantages, mask, "grpo", Normalisers(MAX_LEN, float(mask.sum())))
    assert torch.allclose(terms.ratio, torch.ones_like(terms.ratio))
    # loss = -mean_i(A_i · mean_t logp)'s gradient with the value of -mean_i(A_i)
    assert terms.loss.item() == pytest.approx(-advantages.mean().item(), abs=1e-6)


def test_k3_kl_is_zero_at_the_reference_and_positive_elsewhere():
    logps = torch.tensor([-1.0, -2.0, -0.5])
    assert torch.equal(k3_kl(logps, logps), torch.zeros(3))
    assert (k3_kl(logps, logps + torch.tensor([0.3, -0.3, 1.0])) > 0).all()
    assert k3_kl(torch.tensor([0.0]), torch.tensor([1.0])).item() == pytest.approx(torch.e - 2)


def test_dapo_divides_by_the_global_token_count_per_process():
    per_token, mask = torch.ones(2, 3), torch.tensor([[1, 1, 0], [1, 0, 0]])
    norm = Normalisers(max_completion_length=10, global_active_tokens=12, num_processes=4)
    assert LOSS_AGGREGATIONS["dapo"](per_token, mask, norm).item() == pytest.approx(3 / (12 / 4))
    assert LOSS_AGGREGATIONS["dr_grpo"](per_token, mask, norm).item() == pytest.approx(3 / (2 * 10))
    assert LOSS_AGGREGATIONS["bnpo"](per_token, mask, norm).item() == pytest.approx(1.0)
    assert LOSS_AGGREGATIONS["grpo"](per_token, mask, norm).item() == pytest.approx(1.0)


# ---- advantages -------------------------------------------------------------------------------------------
def test_group_advantages_by_hand():
    rewards = torch.tensor([[1.0], [0.0], [0.0], [0.0], [2.0], [2.0]])
    adv = group_advantages(rewards, torch.tensor([1.0]), num_generations=3)
    std1 = torch.tensor([1.0, 0.0, 0.0]).std().item()  # Bessel: sqrt(1/3)
    expected = [2 / 3 / (std1 + 1e-4), -1 / 3 / (std1 + 1e-4), -1 / 3 / (std1 + 1e-4),
                -4 / 3 / (1.1547005 + 1e-4), 2 / 3 / (1.1547005 + 1e-4), 2 / 3 / (1.1547005 + 1e-4)]
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
    expected = ((grouped - grouped.mean(1, keepdim=True)) / (trl_nanstd(grouped, dim=1)[:, None] + 1e-4)).flatten()
    adv = group_advantages(table, weights, G)
    torch.testing.assert_close(adv.values, expected)
    torch.testing.assert_close(adv.rewards, rewards)
    # GDPO, as TRL: per-function group normalisation, weighted sum, batch normalisation
    per = table.view(-1, G, 2)
    normed = ((per - per.mean(1, keepdim=True)) / (trl_nanstd(per, dim=1, keepdim=True) + 1e-4)).view(-1, 2)
    summed = (normed * weights).sum(1)
    expected = (summed - summed.mean()) / (trl_nanstd(summed) + 1e-4)
    torch.testing.assert_close(group_advantages(table, weights, G, aggregation="normalize_then_sum").values, expected)


def test_nanstd_matches_trl():
    x = torch.tensor([[1.0, 2.0, float("nan")], [3.0, 3.0, 3.0], [1.0, float("nan"), float("nan")]])
    torch.testing.assert_close(nanstd(x, dim=1), trl_nanstd(x, dim=1), equal_nan=True)
    torch.testing.assert_close(nanstd(x), trl_nanstd(x))


def test_rewards_that_do_not_split_into_groups_are_rejected():
    with pytest.raises(ValueError, match="num_generations=4"):
        group_advantages(torch.zeros(6, 1), torch.ones(1), 4)
