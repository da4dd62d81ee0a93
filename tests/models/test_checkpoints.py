"""A training checkpoint's model weights, and one-line errors for files that are not one."""

import pytest
import torch
from torch import nn

from metalight.errors import ConfigError
from metalight.models.checkpoints import checkpoint_header, load_checkpoint_weights, read_checkpoint
from tests.reliability.conftest import flip_inside_a_tensor


def test_the_model_weights_of_a_lightning_checkpoint_are_loaded(tmp_path):
    trained = nn.Linear(3, 2)
    path = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()},
            "hyper_parameters": {"model": "spec"},
        },
        path,
    )
    state, hparams = read_checkpoint(path)
    assert hparams == {"model": "spec"} and set(state) == {"model.weight", "model.bias"}
    loaded = load_checkpoint_weights(nn.Linear(3, 2), path)
    assert torch.equal(loaded.weight, trained.weight) and torch.equal(loaded.bias, trained.bias)


def test_files_that_are_not_a_run_checkpoint_name_the_problem(tmp_path):
    torch.save({"weights": 1}, tmp_path / "plain.pt")
    with pytest.raises(ConfigError, match=r"plain.pt: not a Lightning checkpoint \(no state_dict\)"):
        read_checkpoint(tmp_path / "plain.pt")
    torch.save({"state_dict": {"head.weight": torch.zeros(1)}}, tmp_path / "other.ckpt")
    with pytest.raises(ConfigError, match=r"other.ckpt: no 'model\.\*' weights"):
        load_checkpoint_weights(nn.Linear(1, 1), tmp_path / "other.ckpt")
    with pytest.raises(ConfigError, match="not found"):
        read_checkpoint(tmp_path / "missing.ckpt")


def test_a_checkpoint_with_flipped_bytes_inside_a_tensor_is_refused_before_loading(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save(
        {
            "state_dict": {"model.weight": torch.randn(64, 64)},
            "global_step": 3,
            "epoch": 1,
            "hyper_parameters": {"_class_path": "pkg.Module"},
        },
        path,
    )
    assert checkpoint_header(path) == {"class_path": "pkg.Module", "global_step": 3, "epoch": 1}
    member = flip_inside_a_tensor(path)
    with pytest.raises(ConfigError, match=rf"checkpoint {path} is damaged: its part {member} does not match"):
        read_checkpoint(path)
