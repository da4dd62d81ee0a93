"""PC and LR axes, the saved ProbeSet, probe metrics."""

import pytest
import torch

from metalight.errors import ConfigError, DataError
from metalight.methods.probes.axes import (
    ProbeSet,
    available_pcs,
    axis_scores,
    check_labels,
    linear_axis,
    pca_axes,
)
from metalight.methods.probes.scores import ProbeScores, probe_metrics


def test_pca_axes_match_torch_svd_of_the_centred_data():
    torch.manual_seed(0)
    x = torch.randn(50, 12) @ torch.randn(12, 12) + 3.0
    directions, offsets, scales = pca_axes(x, [1, 2, 4, 8])
    centred = (x - x.mean(0)).double()
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    for row, k in enumerate([1, 2, 4, 8]):
        reference = vh[k - 1].float()
        assert abs(float(directions[row] @ reference)) == pytest.approx(1.0, abs=1e-5)  # same axis up to sign
        assert directions[row].abs().argmax() == reference.abs().argmax()
        assert directions[row][directions[row].abs().argmax()] > 0  # scikit-learn's deterministic sign
    projections = centred.float() @ directions.T
    torch.testing.assert_close(scales, projections.std(0, unbiased=False), atol=1e-4, rtol=1e-4)
    scores = axis_scores(x, directions, offsets, scales)
    torch.testing.assert_close(scores, projections / scales, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scores.std(0, unbiased=False), torch.ones(4), atol=1e-4, rtol=1e-4)


def test_available_pcs_follow_upstream_component_count():
    assert available_pcs([1, 2, 4, 8, 32, 128, 512], n_rows=180, dim=576) == [1, 2, 4, 8, 32, 128]
    assert available_pcs([1, 8], n_rows=9, dim=576) == [1, 8]
    assert available_pcs([1, 8], n_rows=8, dim=576) == [1]
    with pytest.raises(ConfigError, match="numbered from 1"):
        available_pcs([0], 10, 10)


def test_linear_axis_score_is_decision_over_its_train_std():
    torch.manual_seed(1)
    x, w, b = torch.randn(30, 5), torch.randn(5), torch.tensor(0.7)
    u, c, s = linear_axis(w, b, x)
    decisions = x @ w + b
    torch.testing.assert_close(
        axis_scores(x, u[None], c[None], s[None])[:, 0],
        decisions / decisions.std(unbiased=False),
        atol=1e-5,
        rtol=1e-5,
    )
    assert float(u.norm()) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="zero weights"):
        linear_axis(torch.zeros(5), b, x)


def test_single_class_labels_are_rejected():
    with pytest.raises(DataError, match=r"labels \[1\]: a probe needs both classes"):
        check_labels(torch.ones(10, dtype=torch.long))
    check_labels(torch.tensor([0, 1, 1]))


def test_probe_set_round_trip(tmp_path):
    torch.manual_seed(2)
    probes = ProbeSet(
        [3, 7],
        ["lr", "pc1"],
        torch.nn.functional.normalize(torch.randn(2, 2, 6), dim=-1),
        torch.randn(2, 2),
        torch.rand(2, 2) + 0.5,
        {"model_spec": "m", "model_fingerprint": "abc"},
        {"val": {"accuracy": [[0.5, 0.6], [0.7, 0.8]]}},
    )
    loaded = ProbeSet.load(probes.save(tmp_path / "p.safetensors"))
    features = {3: torch.randn(4, 6), 7: torch.randn(4, 6)}
    torch.testing.assert_close(loaded.score(features), probes.score(features))
    for field in ("layers", "axes", "meta", "metrics"):
        assert getattr(loaded, field) == getattr(probes, field)
    assert loaded.score(features).shape == (4, 2, 2)
    with pytest.raises(ConfigError, match=r"no probe for layer 5 / axis 'lr'"):
        loaded.direction(5, "lr")
    with pytest.raises(ConfigError, match="fitted on activations of 'm'"):
        loaded.check_model("other", "other-model")
    with pytest.raises(ConfigError, match="probe file not found"):
        ProbeSet.load(tmp_path / "missing.safetensors")


def test_probe_metrics_class_matches_functional_and_masks_padding():
    scores = torch.tensor([[[1.0, -1.0]], [[-0.5, 2.0]], [[0.2, 0.1]], [[-2.0, -0.3]]])  # [n=4, L=1, A=2]
    labels = torch.tensor([1, 0, 1, 0])
    values = probe_metrics(scores, labels)
    assert values["accuracy"].tolist() == [[1.0, 0.5]]
    assert values["auroc"].tolist() == [[1.0, 0.25]]  # 1 of the 4 (positive, negative) pairs is ordered
    metric = ProbeScores()
    metric.update(scores[:2], labels[:2])
    metric.update(
        torch.cat([scores[2:], scores[:1]]),
        torch.cat([labels[2:], labels[:1]]),
        mask=torch.tensor([True, True, False]),
    )
    assert metric.compute()["accuracy"].tolist() == values["accuracy"].tolist()
