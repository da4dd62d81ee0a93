"""The probe ceiling: cross-validated logistic-regression AUROC, grouped folds, baselines, features at the
meta question's last token."""

from __future__ import annotations

import pytest
import torch

from metalight.data.records import QARecord
from metalight.errors import ConfigError
from metalight.evaluation.dual_prompt import EvalSettings
from metalight.methods.probes.ceiling import (
    cross_validated_auroc,
    grouped_folds,
    meta_question_features,
    one_hot,
    probe_ceiling,
)


def test_grouped_folds_keep_groups_together_and_spread_positives():
    labels = torch.tensor([1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0])
    groups = ["a", "a", "b", "b", "c", "d", "e", "f", "g", "g", "h", "h"]
    folds = grouped_folds(labels, groups, 3, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(12))
    for fold in folds:
        for g in set(groups):
            rows = [i for i, x in enumerate(groups) if x == g]
            assert all(i in fold for i in rows) or not any(i in fold for i in rows)
    assert all(labels[f].sum() >= 1 for f in folds)


def test_a_linear_signal_is_found_and_noise_is_not():
    torch.manual_seed(0)
    x = torch.randn(200, 20)
    labels = (x[:, 3] + 0.3 * torch.randn(200) > 0).long()
    assert cross_validated_auroc(x, labels) > 0.9
    noise = torch.randn(200, 20)
    assert abs(cross_validated_auroc(noise, labels) - 0.5) < 0.15


def test_ceiling_reports_best_layer_and_baselines_on_the_same_folds():
    torch.manual_seed(1)
    level = torch.randint(0, 4, (160,))
    correct = (level < 2) & (torch.rand(160) < 0.9)
    features = {3: torch.randn(160, 8), 5: torch.cat([one_hot(level.tolist()), torch.randn(160, 4)], 1)}
    ceiling = probe_ceiling(features, correct.tolist(), baselines={"level": one_hot(level.tolist())})
    assert ceiling.best_layer == 5 and ceiling.auroc == ceiling.by_layer[5] > 0.8
    assert ceiling.baselines["level"] > 0.8 and ceiling.by_layer[3] < 0.7
    assert ceiling.as_dict()["by_layer"]["5"] == ceiling.auroc


def test_one_class_is_an_error():
    with pytest.raises(ConfigError, match="every answer here is wrong"):
        cross_validated_auroc(torch.randn(10, 3), torch.zeros(10))


def test_features_are_read_at_the_meta_prompts_last_token(tiny):
    model, tokenizer = tiny
    records = [QARecord(id=str(i), question=f"What is {i} + 1?", answers=[str(i + 1)]) for i in range(3)]
    settings = EvalSettings(meta_chat_template="auto")
    features = meta_question_features(model, tokenizer, records, settings, layers=[0, 1])
    assert set(features) == {0, 1} and features[1].shape == (3, model.config.hidden_size)
    # the same prompt alone gives the same row (left padding does not move the last token)
    alone = meta_question_features(model, tokenizer, records[2:], settings, layers=[1])
    assert torch.allclose(alone[1][0], features[1][2], atol=1e-5)
