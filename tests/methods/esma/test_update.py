"""Member seeds, sharding, fitness shaping and the gradient written into p.grad."""

import pytest
import torch

from metalight.errors import ConfigError
from metalight.methods.esma.noise import make_scheme
from metalight.methods.esma.selection import select_parameters
from metalight.methods.esma.update import (
    Member,
    add_update_in_place,
    member_seeds,
    shape_fitness,
    shard,
    write_es_gradient,
)
from tests.conftest import build_tiny_llama


def test_member_seeds_depend_on_run_seed_and_step_only():
    assert member_seeds(1, 5, 8) == member_seeds(1, 5, 8)
    assert member_seeds(1, 5, 8) != member_seeds(1, 6, 8) != member_seeds(2, 5, 8)
    pairs = member_seeds(1, 5, 6, antithetic=True)
    assert [m.sign for m in pairs] == [1, -1] * 3 and pairs[0].seed == pairs[1].seed
    with pytest.raises(ConfigError, match="must be even"):
        member_seeds(1, 5, 5, antithetic=True)


def test_round_robin_shards_cover_every_member_once():
    items = list(range(7))
    parts = [shard(items, r, 3) for r in range(3)]
    assert parts == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(i for part in parts for i in part) == items


def test_zscore_uses_unbiased_std_like_upstream():
    fitness = torch.tensor([1.0, 2.0, 4.0])
    weights, missing = shape_fitness(fitness)
    expected = (fitness.double() - fitness.double().mean()) / (fitness.double().std(unbiased=True) + 1e-8)
    assert missing == 0 and torch.allclose(weights, expected)
    assert shape_fitness(torch.tensor([3.0, 3.0, 3.0]))[0].abs().max() == 0  # equal rewards: no update


def test_rank_shaping_is_centred_and_shares_ties():
    weights, _ = shape_fitness(torch.tensor([10.0, -5.0, 10.0, 0.0]), "rank")
    assert weights.tolist() == [pytest.approx(v) for v in [0.5 - 1 / 6, -0.5, 0.5 - 1 / 6, -0.5 + 1 / 3]]


def test_nan_members_get_zero_weight_and_all_nan_raises():
    weights, missing = shape_fitness(torch.tensor([1.0, float("nan"), 3.0]))
    assert missing == 1 and weights[1] == 0 and weights[0] == -weights[2]
    with pytest.raises(ValueError, match="every population member's reward is NaN"):
        shape_fitness(torch.tensor([float("nan")] * 3))


def test_gradient_is_minus_the_weighted_mean_noise(fresh):
    model, _ = fresh
    scheme = make_scheme("esma", select_parameters(model, "mlp"))
    members = [Member(1), Member(2, -1), Member(3)]
    weights = torch.tensor([0.5, 1.0, 0.0], dtype=torch.float64)
    norm = write_es_gradient(scheme, members, weights)
    expected = {
        i: torch.zeros_like(scheme.selected[i].param, dtype=torch.float64)
        for i in range(len(scheme.selected))
    }
    for m, w in zip(members, weights):
        for i, eps in scheme.iter_noise(m.seed):
            expected[i] -= w * m.sign * eps.double() / 3
    for i, item in enumerate(scheme.selected):
        torch.testing.assert_close(item.param.grad.double(), expected[i], atol=1e-6, rtol=1e-6)
    assert norm == pytest.approx(sum(e.square().sum().item() for e in expected.values()) ** 0.5, rel=1e-5)
    assert all(p.grad is None for n, p in model.named_parameters() if ".mlp." not in n)


def upstream_apply_evolution(model, seeds, absolute_scale, relative_scales, reverse=False):
    """cosmoquester/ESMA esma/evolution.py::apply_evolution at 4006f3c, verbatim apart from the seeds'
    types."""
    gen = torch.Generator(device=model.device)
    for idx, seed in enumerate(seeds):
        gen.manual_seed(int(seed))
        for param in model.parameters():
            update = torch.randn(param.shape, generator=gen, device=param.device, dtype=param.dtype)
            update.mul_(relative_scales[idx] * absolute_scale / len(seeds))
            if reverse:
                param.data.sub_(update)
            else:
                param.data.add_(update)


def test_in_place_update_reproduces_upstreams_bfloat16_weights_bit_for_bit(tiny):
    _, tokenizer = tiny
    upstream, ours, summed = (build_tiny_llama(len(tokenizer)).to(torch.bfloat16) for _ in range(3))
    seeds = [17, 4242, 999_983, 3]
    rewards = torch.tensor([1.25, 0.5, 2.0, 0.75], dtype=torch.float32)  # upstream: float32 rewards
    z = (rewards - rewards.mean()) / (rewards.std() + 1e-8)
    upstream_apply_evolution(upstream, seeds, 5e-4, z)

    members = [Member(s) for s in seeds]
    weights, _ = shape_fitness(rewards, "zscore", torch.float32)
    assert torch.equal(weights, z)
    norm = add_update_in_place(make_scheme("esma", select_parameters(ours, "all")), members, weights, 5e-4)
    for (name, a), b in zip(upstream.named_parameters(), ours.parameters()):
        assert torch.equal(a, b), name
    moved = sum(
        (b.double() - c.double()).square().sum()
        for b, c in zip(ours.parameters(), build_tiny_llama(len(tokenizer)).to(torch.bfloat16).parameters())
    )
    assert norm == pytest.approx(moved.sqrt().item())

    # the default float32 sum, stepped once by SGD(lr = α), rounds once instead of once per member
    scheme = make_scheme("esma", select_parameters(summed, "all"))
    write_es_gradient(scheme, members, shape_fitness(rewards)[0])
    torch.optim.SGD(summed.parameters(), lr=5e-4).step()
    assert any(not torch.equal(a, b) for a, b in zip(upstream.parameters(), summed.parameters()))
