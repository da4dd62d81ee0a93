"""In-place perturbation: restore exactly by copy, and bounded drift of add-then-subtract."""

import torch

from metalight.methods.esma.noise import make_scheme
from metalight.methods.esma.perturb import add_noise_, perturbed, restore_drift
from metalight.methods.esma.selection import select_parameters


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_perturbed_adds_scaled_noise_and_copy_restores_bitwise(fresh):
    model, _ = fresh
    scheme = make_scheme("esma", select_parameters(model))
    before = _state(model)
    with perturbed(scheme, 4, 0.1, "copy"):
        first = next(iter(scheme.iter_noise(4)))[1]
        name = scheme.selected[0].name
        torch.testing.assert_close(model.state_dict()[name], before[name] + 0.1 * first)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_drift_of_1000_fp32_cycles_is_within_its_bound(fresh):
    model, _ = fresh
    scheme = make_scheme("esma", select_parameters(model, "layers.0.mlp.down_proj|norm"))
    before = _state(model)
    drift = restore_drift(scheme, sigma=1e-3, cycles=1000)
    assert drift.max_abs <= drift.bound and drift.relative_norm < 1e-5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # put back afterwards


def test_bfloat16_drift_is_measured_and_bounded(fresh):
    model, _ = fresh
    model.to(torch.bfloat16)
    scheme = make_scheme("esma", select_parameters(model, "layers.0.self_attn.q_proj"))
    drift = restore_drift(scheme, sigma=1e-3, cycles=1000)
    assert 0 < drift.max_abs <= drift.bound  # bf16 add-then-subtract is not exact: copy restore exists for it


def test_add_noise_then_subtract_is_close_in_fp32(fresh):
    model, _ = fresh
    scheme = make_scheme("iid", select_parameters(model, "mlp"))
    before = _state(model)
    add_noise_(scheme, 1, 1e-3)
    add_noise_(scheme, 1, -1e-3)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], atol=1e-6, rtol=0)
