"""Noise schemes: upstream's single stream, per-tensor streams, low-rank factors; gradient accumulation."""

import math

import pytest
import torch

from metalight.errors import ConfigError
from metalight.methods.esma.noise import derive_seed, make_scheme
from metalight.methods.esma.selection import select_parameters


def test_esma_scheme_is_one_generator_over_all_tensors_in_order(fresh):
    model, _ = fresh
    scheme = make_scheme("esma", select_parameters(model))
    generator = torch.Generator().manual_seed(123)
    expected = [torch.randn(p.shape, dtype=p.dtype, generator=generator) for p in model.parameters()]
    got = [eps for _, eps in scheme.iter_noise(123)]
    assert len(got) == len(expected) and all(torch.equal(a, b) for a, b in zip(got, expected))


def test_iid_scheme_draws_each_tensor_on_its_own(fresh):
    model, _ = fresh
    scheme = make_scheme("iid", select_parameters(model))
    streamed = dict(scheme.iter_noise(5))
    assert torch.equal(scheme.tensor_noise(5, 3), streamed[3])
    assert not torch.equal(scheme.tensor_noise(5, 3), scheme.tensor_noise(6, 3))


def test_noise_dtype_follows_the_parameter(fresh):
    model, _ = fresh
    model.to(torch.bfloat16)
    for dtype in ("param", "float32"):
        for _, eps in make_scheme("esma", select_parameters(model, "mlp"), dtype).iter_noise(1):
            assert eps.dtype == torch.bfloat16


def test_lowrank_noise_is_a_rank_r_matrix_with_unit_variance(fresh):
    model, _ = fresh
    scheme = make_scheme("lowrank", select_parameters(model), rank=3)
    noise = dict(scheme.iter_noise(9))
    assert set(noise) == set(scheme.matrices)  # norms and the tied embedding are not perturbed
    index = scheme.matrices[0]
    a, b = scheme.factors(9, index)
    torch.testing.assert_close(noise[index], a @ b.T / math.sqrt(3))
    assert torch.linalg.matrix_rank(noise[index]).item() == 3
    everything = torch.cat([n.flatten() for n in noise.values()])
    assert 0.9 < everything.var().item() < 1.1


def test_lowrank_can_perturb_non_matrix_parameters_full_rank(fresh):
    model, _ = fresh
    scheme = make_scheme("lowrank", select_parameters(model), rank=1, perturb_non_matrix=True)
    assert {i for i, _ in scheme.iter_noise(1)} == set(range(len(scheme.selected)))


@pytest.mark.parametrize("name", ["esma", "iid", "lowrank"])
def test_accumulate_equals_the_sum_of_regenerated_noise(fresh, name):
    model, _ = fresh
    scheme = make_scheme(name, select_parameters(model, "self_attn|norm"), rank=2)
    seeds, coefficients = [3, 8, 21], [0.5, -1.25, 2.0]
    streams = [dict(scheme.iter_noise(s)) for s in seeds]
    for index, total in scheme.accumulate(seeds, coefficients):
        expected = sum(c * s[index].double() for c, s in zip(coefficients, streams))
        torch.testing.assert_close(total.double(), expected, atol=1e-5, rtol=1e-5)


def test_lowrank_rank_errors_name_the_setting(fresh):
    model, _ = fresh
    with pytest.raises(ConfigError, match="rank: 0 must be >= 1"):
        make_scheme("lowrank", select_parameters(model), rank=0)
    with pytest.raises(ConfigError, match="rank: 65 is larger than the smallest side"):
        make_scheme("lowrank", select_parameters(model, "attention"), rank=65)
    with pytest.raises(ConfigError, match="lowrank needs at least one Linear weight"):
        make_scheme("lowrank", select_parameters(model, "norm"))


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(1, 2) == derive_seed(1, 2) and derive_seed(1, 2) != derive_seed(2, 1)
    assert len({derive_seed(s, t) for s in range(50) for t in range(50)}) == 2500
    assert 0 <= derive_seed(2**40, 7) < 2**63
