import math
import socket
import warnings

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from metalight.metrics import (
    METRIC_NAMES,
    MetacognitionMetrics,
    brier_score,
    dprime_type2,
    expected_calibration_error,
    meta_d_from_confidence,
    no_failure_rate,
    prediction_rejection_ratio,
    raw_alignment,
    rmi,
    type2_auroc,
    yes_failure_rate,
    yes_ratio,
)

torch.set_num_threads(1)
WORLD_SIZE = 2


def _answers(n: int, seed: int) -> tuple[torch.Tensor, ...]:
    """(correct, said_yes, confidence with some NaN, parsed) of a mildly metacognitive model."""
    g = torch.Generator().manual_seed(seed)
    correct = torch.rand(n, generator=g) < 0.6
    confidence = (0.35 + 0.3 * correct + 0.3 * torch.rand(n, generator=g)).clamp(0, 1)
    said_yes = confidence > 0.6
    confidence[torch.rand(n, generator=g) < 0.1] = float("nan")
    parsed = torch.rand(n, generator=g) > 0.05
    return correct, said_yes, confidence, parsed


def _same(a: dict[str, float], b: dict[str, float], rel: float = 1e-12) -> bool:
    def close(x: float, y: float) -> bool:
        return (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=rel, abs_tol=rel)

    return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)


def test_compute_returns_exactly_the_documented_float_keys():
    metrics = MetacognitionMetrics()
    metrics.update(*_answers(50, seed=0))
    result = metrics.compute()
    assert list(result) == list(METRIC_NAMES)
    assert set(METRIC_NAMES) == {
        "n", "accuracy", "dprime_type2", "hit_rate", "false_alarm_rate", "auroc_type2", "prr",
        "raw_alignment", "yes_ratio", "yes_failure_rate", "no_failure_rate", "rmi", "ece", "brier",
        "meta_d_prime", "m_ratio", "meta_unparsed_rate",
    }  # fmt: skip
    assert all(type(v) is float for v in result.values())


def test_every_value_equals_the_single_metric_function():
    correct, said_yes, confidence, parsed = _answers(400, seed=1)
    metrics = MetacognitionMetrics(dprime_correction="loglinear", ece_bins=7, meta_d_ratings=3)
    metrics.update(correct, said_yes, confidence, parsed)
    result = metrics.compute()
    dprime = dprime_type2(correct, said_yes, correction="loglinear")
    fit = meta_d_from_confidence(correct, confidence, n_ratings=3)
    expected = {
        "n": 400.0,
        "accuracy": correct.double().mean().item(),
        **{k: v.item() for k, v in dprime.items()},
        "auroc_type2": type2_auroc(correct, confidence).item(),
        "prr": prediction_rejection_ratio(confidence, correct.double()).item(),
        "raw_alignment": raw_alignment(correct, said_yes).item(),
        "yes_ratio": yes_ratio(correct, said_yes).item(),
        "yes_failure_rate": yes_failure_rate(correct, said_yes).item(),
        "no_failure_rate": no_failure_rate(correct, said_yes).item(),
        "rmi": rmi(correct, said_yes).item(),
        "ece": expected_calibration_error(correct, confidence, n_bins=7).item(),
        "brier": brier_score(correct, confidence).item(),
        "meta_d_prime": fit.meta_d_prime,
        "m_ratio": fit.m_ratio,
        "meta_unparsed_rate": (~parsed).double().mean().item(),
    }
    assert _same(result, {k: expected[k] for k in METRIC_NAMES})
    # the constructor's ece_bins is used
    assert result["ece"] != expected_calibration_error(correct, confidence, n_bins=15).item()


def test_masked_rows_count_nowhere():
    correct, said_yes, confidence, parsed = _answers(120, seed=2)
    mask = torch.arange(120) % 4 != 0
    masked, subset = MetacognitionMetrics(), MetacognitionMetrics()
    masked.update(correct, said_yes, confidence, parsed, mask=mask)
    subset.update(correct[mask], said_yes[mask], confidence[mask], parsed[mask])
    assert masked.compute() == subset.compute()
    assert masked.compute()["n"] == 90.0


def test_batched_updates_equal_one_update_and_clone_reset_are_independent():
    answers = _answers(203, seed=3)
    batched, whole = MetacognitionMetrics(), MetacognitionMetrics()
    for lo, hi in [(0, 1), (1, 64), (64, 203)]:
        batched.update(*(t[lo:hi] for t in answers))
    whole.update(*answers)
    expected = whole.compute()
    assert _same(batched.compute(), expected)

    twin = whole.clone()
    twin.update(*_answers(30, seed=4))
    assert not _same(twin.compute(), expected)
    assert _same(whole.compute(), expected)

    twin.reset()
    twin.update(*answers)
    assert _same(twin.compute(), expected)


def test_all_correct_answers_give_nan_sensitivities_with_warnings_not_errors():
    correct, said_yes, confidence, parsed = _answers(40, seed=5)
    metrics = MetacognitionMetrics()
    with pytest.warns(UserWarning) as caught:
        metrics.update(torch.ones_like(correct), said_yes, confidence, parsed)
        result = metrics.compute()
    messages = " ".join(str(w.message) for w in caught)
    assert "d'type2" in messages and "AUROC2" in messages and "meta-d'" in messages
    for name in ("dprime_type2", "false_alarm_rate", "auroc_type2", "meta_d_prime", "m_ratio"):
        assert math.isnan(result[name]), name
    assert result["accuracy"] == 1.0 and result["rmi"] == 0.0
    assert result["yes_failure_rate"] == 0.0 and result["no_failure_rate"] == 1.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sampler_shard(n: int, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices and keep-mask of a DistributedSampler(shuffle=False) shard: padded by repeating the start."""
    total = math.ceil(n / WORLD_SIZE) * WORLD_SIZE
    padded = torch.arange(total) % n
    positions = torch.arange(rank, total, WORLD_SIZE)
    return padded[positions], positions < n


def _ddp_worker(rank: int, port: int, n: int) -> None:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")  # NaN warnings of the scenario without scores on rank 1
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        answers = _answers(n, seed=7)
        odd_rows_unscored = torch.where(torch.arange(n) % 2 == 1, float("nan"), answers[2])
        no_scores = (answers[0], answers[1], odd_rows_unscored, answers[3])
        for data in (answers, no_scores):  # the second leaves rank 1 without a single confidence
            single = MetacognitionMetrics(sync_on_compute=False)
            single.update(*data)
            expected = single.compute()

            distributed = MetacognitionMetrics()
            index, keep = _sampler_shard(n, rank)
            cuts = [0, 5, 23, index.numel()] if rank == 0 else [0, 30, index.numel()]  # uneven batches
            for lo, hi in zip(cuts[:-1], cuts[1:]):
                distributed.update(*(t[index[lo:hi]] for t in data), mask=keep[lo:hi])
            result = distributed.compute()
            assert _same(result, expected, rel=1e-9), (rank, result, expected)
            assert result["n"] == n
    finally:
        dist.destroy_process_group()


def test_ddp_on_two_gloo_processes_equals_one_process_on_an_odd_set():
    mp.spawn(_ddp_worker, args=(_free_port(), 101), nprocs=WORLD_SIZE, join=True)
