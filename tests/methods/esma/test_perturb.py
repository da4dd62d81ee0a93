"""In-place perturbation: restore exactly by copy, and bounded drift of add-then-subtract."""

from dataclasses import dataclass

import torch

from metalight.methods.esma.noise import NoiseScheme, make_scheme
from metalight.methods.esma.perturb import add_noise_, perturbed
from metalight.methods.esma.selection import select_parameters


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@dataclass
class Drift:
    """Restore error after ``cycles`` perturb/subtract cycles: largest absolute weight change, the change's
    norm relative to ‖θ‖, and a worst-case bound (cycles × 2 roundings of half an ulp of |θ| + |σε|)."""

    cycles: int
    max_abs: float
    relative_norm: float
    bound: float


@torch.no_grad()
def restore_drift(scheme: NoiseScheme, sigma: float, cycles: int = 1000, seed: int = 0) -> Drift:
    """Run ``cycles`` perturb/subtract cycles (new member seed each) and measure the drift; the parameters are
    put back exactly afterwards."""
    indices = scheme.perturbed_indices()
    original = {i: scheme.selected[i].param.detach().clone() for i in indices}
    try:
        largest_noise = 0.0
        for cycle in range(cycles):
            with perturbed(scheme, seed + cycle, sigma, "subtract"):
                pass
            if cycle == 0:
                largest_noise = max(eps.abs().max().item() for _, eps in scheme.iter_noise(seed)) * sigma
        diff_sq, norm_sq, max_abs, bound = 0.0, 0.0, 0.0, 0.0
        for i in indices:
            now, before = scheme.selected[i].param.detach().double(), original[i].double()
            delta = now - before
            diff_sq += delta.square().sum().item()
            norm_sq += before.square().sum().item()
            max_abs = max(max_abs, delta.abs().max().item())
            eps = torch.finfo(original[i].dtype).eps
            # Noise tails across cycles are not all seen: allow 8x the first cycle's largest |σε|.
            bound = max(bound, cycles * eps * (before.abs().max().item() + 8 * largest_noise))
        return Drift(cycles, max_abs, (diff_sq / max(norm_sq, 1e-30)) ** 0.5, bound)
    finally:
        for i, value in original.items():
            scheme.selected[i].param.data.copy_(value)


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
