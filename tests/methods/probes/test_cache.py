"""Feature cache: reuse, a changed prompt never reads a stale entry, another model is an error."""

import copy

import pytest
import torch

from metalight.errors import ConfigError
from metalight.methods.probes.cache import FeatureCache, model_fingerprint
from metalight.methods.probes.extraction import extract_features, statement_span_text


def make_items(tokenizer, user="Say something."):
    return [
        statement_span_text(tokenizer, user, s, "You are a helpful assistant.")
        for s in ("One.", "Two, three.")
    ]


def test_cache_reuses_entries_adds_layers_and_keys_on_the_prompt(tiny, tmp_path, monkeypatch):
    model, tokenizer = tiny
    cache = FeatureCache(tmp_path)
    items = make_items(tokenizer)
    first = cache.features(model, tokenizer, "tiny", "set-train", items, ["a", "b"], [0])
    torch.testing.assert_close(first[0], extract_features(model, tokenizer, items, [0])[0])
    calls = []
    import metalight.methods.probes.cache as cache_module

    def counting(*args, **kwargs):
        calls.append(args[3])
        return extract_features(*args, **kwargs)

    monkeypatch.setattr(cache_module, "extract_features", counting)
    again = cache.features(model, tokenizer, "tiny", "set-train", items, ["a", "b"], [0, 1])
    assert calls == [[1]]  # layer 0 came from disk, only layer 1 was extracted
    torch.testing.assert_close(again[0], first[0])
    changed = make_items(tokenizer, user="Respond to the user.")
    old, new = (cache.entry("tiny", "set-train", "response", i) for i in (items, changed))
    assert old != new
    cache.features(model, tokenizer, "tiny", "set-train", changed, ["a", "b"], [0])
    assert calls == [[1], [0]]  # the changed prompt was extracted, not read from the old entry


def test_cache_built_by_another_model_is_an_error(tiny, tmp_path):
    model, tokenizer = tiny
    items = make_items(tokenizer)
    FeatureCache(tmp_path).features(model, tokenizer, "my-model", "set", items, ["a", "b"], [0])
    retrained = copy.deepcopy(model)  # e.g. a fine-tuned checkpoint re-saved under the same spec
    with torch.no_grad():
        retrained.model.layers[0].mlp.down_proj.weight.add_(0.01)
    assert model_fingerprint(retrained) != model_fingerprint(model)
    with pytest.raises(
        ConfigError,
        match=r"feature cache .* was built by model 'my-model' \(fingerprint "
        r"\w+\), not by "
        r"this run's 'my-model'",
    ):
        FeatureCache(tmp_path).features(retrained, tokenizer, "my-model", "set", items, ["a", "b"], [0])


def test_fingerprint_is_deterministic(tiny):
    model, _ = tiny
    assert model_fingerprint(model) == model_fingerprint(model)
