import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy

from metalight.metrics.alignment import (
    MetaAlignment,
    accuracy,
    no_failure_rate,
    raw_alignment,
    rmi,
    yes_failure_rate,
    yes_ratio,
)

torch.set_num_threads(1)

FUNCTIONS = {
    "accuracy": accuracy,
    "raw_alignment": raw_alignment,
    "yes_ratio": yes_ratio,
    "yes_failure_rate": yes_failure_rate,
    "no_failure_rate": no_failure_rate,
    "rmi": rmi,
}


def _random_answers(n: int = 300, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    correct = torch.rand(n, generator=g) < 0.45
    said_yes = torch.where(correct, torch.rand(n, generator=g) < 0.8, torch.rand(n, generator=g) < 0.35)
    return correct, said_yes


def _numpy_measures(c: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """ESMA's per-sample definitions, averaged, and RMI from scipy entropies (bits)."""
    joint = np.array([[np.mean(~c & ~y), np.mean(~c & y)], [np.mean(c & ~y), np.mean(c & y)]])
    h_c = entropy(joint.sum(1), base=2)
    mutual_information = h_c + entropy(joint.sum(0), base=2) - entropy(joint.ravel(), base=2)
    return {
        "accuracy": c.mean(),
        "raw_alignment": np.mean(c == y),
        "yes_ratio": y.mean(),
        "yes_failure_rate": np.mean(1 - c[y]),
        "no_failure_rate": np.mean(c[~y]),
        "rmi": mutual_information / h_c,
    }


def test_every_measure_matches_its_numpy_definition():
    correct, said_yes = _random_answers()
    expected = _numpy_measures(correct.numpy(), said_yes.numpy())
    metric = MetaAlignment()
    metric.update(correct, said_yes)
    computed = metric.compute()
    assert set(computed) == set(expected)
    for name, value in expected.items():
        assert computed[name].item() == pytest.approx(value, abs=1e-12), name
        assert FUNCTIONS[name](correct, said_yes).item() == pytest.approx(value, abs=1e-12), name


def test_rmi_is_one_for_perfect_reports_and_zero_for_independent_ones():
    correct = torch.tensor([1, 1, 0, 0, 1, 0], dtype=torch.bool)
    assert rmi(correct, correct).item() == pytest.approx(1.0)
    assert rmi(correct, ~correct).item() == pytest.approx(1.0)  # informative, though inverted
    independent_yes = torch.tensor([1, 0, 1, 0])  # P(yes | correct) = P(yes | wrong) = 1/2
    assert rmi(torch.tensor([1, 1, 0, 0]), independent_yes).item() == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("all_correct", [True, False])
def test_rmi_is_zero_when_accuracy_is_zero_or_one(all_correct):
    correct = torch.full((4,), all_correct)
    assert rmi(correct, torch.tensor([1, 0, 1, 1])).item() == 0.0


def test_failure_rates_are_nan_when_their_answer_never_occurs():
    correct = torch.tensor([1, 0, 1])
    assert math.isnan(yes_failure_rate(correct, torch.zeros(3)).item())
    assert math.isnan(no_failure_rate(correct, torch.ones(3)).item())
    assert no_failure_rate(correct, torch.zeros(3)).item() == pytest.approx(2 / 3)


def test_no_rows_gives_nan_everywhere_without_crashing():
    metric = MetaAlignment()
    metric.update(torch.tensor([1, 0]), torch.tensor([1, 1]), mask=torch.tensor([False, False]))
    assert all(math.isnan(v.item()) for v in metric.compute().values())


def test_mask_drops_rows_as_if_absent():
    correct, said_yes = _random_answers(seed=1)
    mask = torch.arange(correct.shape[0]) % 3 != 0
    for name, fn in FUNCTIONS.items():
        assert fn(correct, said_yes, mask=mask).item() == fn(correct[mask], said_yes[mask]).item(), name


def test_batched_updates_equal_one_update_and_reset_clears():
    correct, said_yes = _random_answers(n=101, seed=2)
    batched, whole = MetaAlignment(), MetaAlignment()
    for lo, hi in [(0, 1), (1, 60), (60, 101)]:
        batched.update(correct[lo:hi], said_yes[lo:hi])
    whole.update(correct, said_yes)
    assert batched.compute() == whole.compute()
    batched.reset()
    assert batched.table.sum().item() == 0
