"""Parameter selection by preset, pattern and layer range; matrices for the low-rank scheme."""

import pytest

from metalight.errors import ConfigError
from metalight.methods.esma.selection import layer_index, select_parameters


def test_all_keeps_parameter_order_and_counts_tied_weights_once(fresh):
    model, _ = fresh
    selected = select_parameters(model, "all")
    assert [s.name for s in selected] == [name for name, _ in model.named_parameters()]
    embed = next(s for s in selected if "embed_tokens" in s.name)
    assert embed.tied_to_embedding and not embed.is_matrix  # the tied lm_head is not perturbed low-rank


def test_presets_and_layer_range(fresh):
    model, _ = fresh
    attention = select_parameters(model, "attention")
    assert attention and all("self_attn" in s.name for s in attention)
    assert all(s.is_matrix for s in attention)
    mlp = select_parameters(model, "mlp", layers=[1, 2])
    assert {layer_index(s.name) for s in mlp} == {1} and all(".mlp." in s.name for s in mlp)
    assert [s.name for s in select_parameters(model, r"norm")] == [
        n for n, _ in model.named_parameters() if "norm" in n
    ]


def test_nothing_selected_or_bad_pattern_is_a_clear_error(fresh):
    model, _ = fresh
    with pytest.raises(ConfigError, match="selects no parameter"):
        select_parameters(model, "vision_tower")
    with pytest.raises(ConfigError, match="valid regular expression"):
        select_parameters(model, "mlp(")
    with pytest.raises(ConfigError, match=r"layers: \[3, 1\]"):
        select_parameters(model, "all", layers=[3, 1])
