"""Weight-change scripts: extract then apply 100% reproduces the tuned weights exactly; top / bottom p%
keep the largest / smallest entries, under a global or a per-tensor threshold."""

import pytest
import torch

from metalight.errors import ConfigError
from metalight.models.loading import load_model
from metalight.models.weight_delta import keep_masks
from scripts.apply_weight_change import main as apply_main
from scripts.extract_weight_change import main as extract_main


@pytest.fixture
def tuned_dir(tiny_model_dir, tmp_path):
    """The tiny model with small ES-like changes, some on near-zero weights (where float32 Δ is not exact)."""
    model, tokenizer = load_model(str(tiny_model_dir))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-4 * torch.randn_like(p))
        model.model.norm.weight[:3] = torch.tensor([1e-7, -3e-6, 2.0**-20])  # base: 1.0
    model.save_pretrained(tmp_path / "tuned")
    tokenizer.save_pretrained(tmp_path / "tuned")
    return tmp_path / "tuned"


def _params(spec):
    return dict(load_model(str(spec))[0].named_parameters())


def test_full_patch_reproduces_the_tuned_weights_exactly(tiny_model_dir, tuned_dir, tmp_path):
    delta = extract_main(
        ["--base", str(tiny_model_dir), "--tuned", str(tuned_dir), "--out", str(tmp_path / "d.st")]
    )
    out = apply_main(
        ["--base", str(tiny_model_dir), "--delta", str(delta), "--out", str(tmp_path / "patched")]
    )
    tuned, patched = _params(tuned_dir), _params(out)
    assert all(torch.equal(tuned[k], patched[k]) for k in tuned)


def test_zero_patch_is_the_base_and_skipped_prefixes_stay_unpatched(tiny_model_dir, tuned_dir, tmp_path):
    delta = extract_main(
        ["--base", str(tiny_model_dir), "--tuned", str(tuned_dir), "--out", str(tmp_path / "d.st")]
    )
    base = _params(tiny_model_dir)
    zero = _params(
        apply_main(
            [
                "--base",
                str(tiny_model_dir),
                "--delta",
                str(delta),
                "--out",
                str(tmp_path / "z"),
                "--ratio",
                "0",
            ]
        )
    )
    assert all(torch.equal(base[k], zero[k]) for k in base)
    skipped = _params(
        apply_main(
            [
                "--base",
                str(tiny_model_dir),
                "--delta",
                str(delta),
                "--out",
                str(tmp_path / "s"),
                "--skip-prefix",
                "model.layers.0",
            ]
        )
    )
    assert all(torch.equal(base[k], skipped[k]) == k.startswith("model.layers.0") for k in base)


def test_top_and_bottom_shares_by_magnitude():
    deltas = {"a": torch.tensor([1.0, -2.0, 3.0, -4.0]), "b": torch.tensor([10.0, 0.5, -0.25, 20.0])}
    top = keep_masks(deltas, 0.25, "top")
    assert top["a"].tolist() == [False] * 4 and top["b"].tolist() == [True, False, False, True]
    bottom = keep_masks(deltas, 0.25, "bottom")  # the 25% smallest: 0.25 and 0.5 (not the bottom 75%)
    assert bottom["a"].tolist() == [False] * 4 and bottom["b"].tolist() == [False, True, True, False]
    per_tensor = keep_masks(deltas, 0.5, "top", "per_tensor")
    assert per_tensor["a"].tolist() == [False, False, True, True] and per_tensor["b"].tolist() == [
        True,
        False,
        False,
        True,
    ]
    with pytest.raises(ConfigError, match="ratio: 1.5 must be in"):
        keep_masks(deltas, 1.5)
