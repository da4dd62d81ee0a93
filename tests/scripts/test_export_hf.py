"""scripts/export_hf.py turns a .ckpt file or a sharded (DCP) checkpoint into a loadable HF directory."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from metalight.errors import ConfigError
from metalight.methods.base import EvalModule
from metalight.models.loading import load_model

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("export_hf", ROOT / "scripts" / "export_hf.py")
export_hf = importlib.util.module_from_spec(spec)
sys.modules["export_hf"] = export_hf
spec.loader.exec_module(export_hf)


def trained_module(model_dir):
    module = EvalModule(model=str(model_dir))
    module.configure_model()
    with torch.no_grad():  # stand-in for training: change the weights
        module.model.model.layers[0].mlp.up_proj.weight.add_(1.0)
    return module


def assert_exported_equals(module, out):
    exported, _ = load_model(str(out))
    ids = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, module.model(ids).logits)


def test_ckpt_file_round_trip(tmp_path, tiny_model_dir):
    module = trained_module(tiny_model_dir)
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}, ckpt)
    assert_exported_equals(module, export_hf.export(ckpt, tmp_path / "hf"))


def test_sharded_dcp_directory_round_trip(tmp_path, tiny_model_dir):
    import torch.distributed.checkpoint as dcp

    module = trained_module(tiny_model_dir)
    shard_dir = tmp_path / "sharded.ckpt"
    dcp.save({"model": module.state_dict()}, checkpoint_id=shard_dir)
    torch.save({"hyper_parameters": dict(module.hparams)}, shard_dir / "meta.pt")
    assert_exported_equals(module, export_hf.export(shard_dir, tmp_path / "hf"))


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        export_hf.export(tmp_path / "nope.ckpt", tmp_path / "out")


@pytest.mark.parametrize("adapter_only", [True, False])
def test_lora_checkpoint_exports_the_merged_model(tmp_path, tiny_model_dir, adapter_only):
    """SFT's LoRA checkpoints hold the adapter only (MetaConf stage 1); others hold base and adapter."""
    from metalight.methods.sft import SFTModule

    module = SFTModule(
        model=str(tiny_model_dir), lora={"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    )
    module.configure_model()
    module.model.eval()
    with torch.no_grad():  # stand-in for training: a non-zero update
        for name, p in module.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams)}
    if adapter_only:
        module.on_save_checkpoint(checkpoint)
        assert all("lora_" in k for k in checkpoint["state_dict"])
    torch.save(checkpoint, tmp_path / "last.ckpt")
    out = export_hf.export(tmp_path / "last.ckpt", tmp_path / "hf")
    assert not (out / "adapter_config.json").exists()
    assert_exported_equals(module, out)


def test_lora_checkpoint_that_does_not_fit_the_settings_is_a_clear_error(tmp_path, tiny_model_dir):
    from metalight.methods.sft import SFTModule

    module = SFTModule(model=str(tiny_model_dir), lora={"r": 4, "alpha": 8, "target_modules": ["q_proj"]})
    module.configure_model()
    hparams = {
        **module.hparams,
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
    }
    torch.save({"state_dict": module.state_dict(), "hyper_parameters": hparams}, tmp_path / "last.ckpt")
    with pytest.raises(
        ConfigError, match=r"its weights do not fit LoRA .* \(4 adapter weights missing, 2 unexpected\)"
    ):
        export_hf.export(tmp_path / "last.ckpt", tmp_path / "hf")
