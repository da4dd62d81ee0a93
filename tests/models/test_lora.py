"""LoRA: merging gives the adapter model's logits; every export mode reloads to the same logits."""

import pytest
import torch

from metalight.errors import ConfigError
from metalight.models.loading import load_model
from metalight.models.lora import LoraSettings, apply_lora, export_model, is_peft, merged_copy


@pytest.fixture
def trained_lora(tiny_model_dir):
    model, tok = load_model(str(tiny_model_dir))
    settings = LoraSettings(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj"])
    peft_model = apply_lora(model, settings)
    torch.manual_seed(1)
    with torch.no_grad():  # lora_B starts at zero; give the adapter a real effect, as training would
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return peft_model.eval(), tok


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_merge_and_unload_gives_the_adapter_models_logits(trained_lora, tiny_model_dir):
    model, _ = trained_lora
    ids = torch.tensor([[5, 17, 300, 42, 9, 1000]])
    base, _ = load_model(str(tiny_model_dir))
    assert not torch.allclose(logits(model, ids), logits(base, ids), atol=1e-3)  # the adapter matters
    merged = merged_copy(model)
    assert not is_peft(merged) and is_peft(model)  # the module keeps its adapter
    torch.testing.assert_close(logits(merged, ids), logits(model, ids), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", ["merged", "full", "adapter"])
def test_exports_reload_to_the_same_logits(trained_lora, tiny_model_dir, tmp_path, mode):
    from peft import PeftModel

    model, tok = trained_lora
    ids = torch.tensor([[5, 17, 300, 42]])
    path = export_model(model, tok, tmp_path / "hf", mode)
    if mode == "adapter":
        base, _ = load_model(str(tiny_model_dir))
        reloaded = PeftModel.from_pretrained(base, path).eval()
        assert not (path / "model.safetensors").exists()
    else:
        reloaded, reloaded_tok = load_model(str(path))
        assert reloaded_tok.pad_token_id == tok.pad_token_id
    torch.testing.assert_close(logits(reloaded, ids), logits(model, ids), atol=1e-5, rtol=1e-5)
    assert not list(tmp_path.glob(".hf.*"))  # no staging directory left behind


def test_adapter_export_of_a_plain_model_is_a_clear_error(tiny, tmp_path):
    model, tok = tiny
    with pytest.raises(ConfigError, match="needs a LoRA model"):
        export_model(model, tok, tmp_path / "hf", "adapter")


def test_unknown_target_modules_are_a_config_error(tiny_model_dir):
    model, _ = load_model(str(tiny_model_dir))
    with pytest.raises(ConfigError, match="target_modules"):
        apply_lora(model, LoraSettings(target_modules=["no_such_proj"]))
