"""Per-row low-rank perturbation equals explicitly perturbed weights W + sσ A Bᵀ/√r, row by row (fp32)."""

import torch

from metalight.methods.esma.lowrank_forward import LowRankPopulation
from metalight.methods.esma.noise import make_scheme
from metalight.methods.esma.perturb import perturbed
from metalight.methods.esma.selection import select_parameters
from metalight.methods.esma.update import Member

SIGMA = 0.05


def test_batched_rows_equal_explicit_weights_row_by_row(fresh):
    model, _ = fresh
    scheme = make_scheme("lowrank", select_parameters(model, "all"), rank=2)
    members = [Member(11), Member(11, -1), Member(23)]
    torch.manual_seed(0)
    ids = torch.randint(3, 1000, (6, 9))
    mask = torch.ones_like(ids)
    mask[4, :3] = 0  # a left-padded row
    row_member = [0, 1, 2, 0, 1, 2]
    population = LowRankPopulation(scheme, members, SIGMA)
    with population, torch.no_grad(), population.row_context(row_member)(torch.arange(6)):
        batched = model(input_ids=ids, attention_mask=mask).logits
    for row, m in enumerate(row_member):
        with perturbed(scheme, members[m].seed, members[m].sign * SIGMA, "copy"), torch.no_grad():
            explicit = model(input_ids=ids[row : row + 1], attention_mask=mask[row : row + 1]).logits[0]
        keep = mask[row].bool()
        assert (batched[row][keep] - explicit[keep]).abs().max().item() <= 1e-5
    with torch.no_grad():
        plain = model(input_ids=ids[:1]).logits[0]
    assert (batched[0] - plain).abs().max().item() > 1e-3  # the perturbation is not negligible


def test_hooks_refuse_rows_without_members_and_are_removed(fresh):
    model, _ = fresh
    scheme = make_scheme("lowrank", select_parameters(model, "mlp"), rank=1)
    ids = torch.randint(3, 1000, (2, 5))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with LowRankPopulation(scheme, [Member(1)], SIGMA):
            try:
                model(input_ids=ids)
            except RuntimeError as err:
                assert "row context" in str(err)
            else:
                raise AssertionError("a forward outside a row context must fail")
        torch.testing.assert_close(model(input_ids=ids).logits, before, atol=0, rtol=0)
