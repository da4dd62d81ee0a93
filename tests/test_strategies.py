"""Strategy fragments parse, wrap policies come from the model, and unusable strategies fail with the fix."""

import importlib.util
from pathlib import Path

import pytest

from metalight.cli import main
from metalight.errors import ConfigError, MissingPackageError
from metalight.strategies import check_strategy, decoder_layer_classes

ROOT = Path(__file__).resolve().parents[1]
FRAGMENTS = sorted((ROOT / "configs" / "strategy").glob("*.yaml"))


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=lambda p: p.stem)
def test_strategy_fragment_composes_with_an_experiment(fragment, composed_config):
    assert composed_config(fragment)["trainer"]["strategy"] is not None


def test_decoder_layer_class_is_discovered_from_the_model(tiny):
    model, _ = tiny
    assert {c.__name__ for c in decoder_layer_classes(model)} == {"LlamaDecoderLayer"}


def test_model_without_block_classes_is_a_clear_error():
    import torch

    with pytest.raises(ConfigError, match="auto_wrap_policy"):
        decoder_layer_classes(torch.nn.Linear(2, 2))


def test_unknown_strategy_name_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="unknown strategy 'fdsp'.*ddp.*configs/strategy"):
        check_strategy("fdsp", "auto")


@pytest.mark.parametrize(
    "strategy, fragment",
    [
        ("fsdp", "fsdp"),
        ({"class_path": "lightning.pytorch.strategies.FSDPStrategy"}, "fsdp"),
        ({"class_path": "lightning.pytorch.strategies.DeepSpeedStrategy"}, "deepspeed_zero3"),
    ],
)
def test_lightnings_own_sharded_strategy_on_cpu_names_the_fragment(strategy, fragment):
    with pytest.raises(ConfigError, match=f"refuses accelerator 'cpu'; use configs/strategy/{fragment}.yaml"):
        check_strategy(strategy, "cpu")


@pytest.mark.parametrize("fragment", ["fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_project_sharded_strategies_pass_on_cpu(fragment, composed_config):
    strategy = composed_config(ROOT / "configs" / "strategy" / f"{fragment}.yaml")["trainer"]["strategy"]
    assert strategy["class_path"].startswith("metalight.strategies.")
    if "deepspeed" in fragment and importlib.util.find_spec("deepspeed") is None:
        pytest.skip("deepspeed is not installed")
    check_strategy(strategy, "cpu")


def test_sharded_fragment_on_a_machine_without_gpus_says_how_to_run_on_cpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(
        ConfigError, match="needs GPUs.*--trainer.accelerator cpu --trainer.precision 32-true"
    ):
        check_strategy({"class_path": "metalight.strategies.DecoderLayerFSDPStrategy"}, "gpu")


def test_deepspeed_without_the_package_names_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a)
    )
    with pytest.raises(MissingPackageError, match=r"pip install '\.\[deepspeed\]'"):
        check_strategy({"class_path": "lightning.pytorch.strategies.DeepSpeedStrategy"}, "gpu")


def test_ddp_and_auto_pass():
    check_strategy("ddp", "cpu")
    check_strategy(None, None)
    check_strategy("auto", "auto")


@pytest.mark.parametrize("fragment", ["fsdp", "deepspeed_zero2", "deepspeed_zero3"])
def test_es_with_a_sharded_strategy_is_refused_before_launch(fragment, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--config",
                str(ROOT / "configs/esma/quickstart.yaml"),
                "--config",
                str(ROOT / f"configs/strategy/{fragment}.yaml"),
            ]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "ESMAModule perturbs whole weight tensors" in err and "configs/strategy/ddp.yaml" in err


def test_es_module_refuses_a_sharded_trainer_strategy_from_python():
    from types import SimpleNamespace

    from lightning.pytorch.strategies import FSDPStrategy

    from metalight.methods.esma.module import ESMAModule

    module = ESMAModule(model="unused", population_size=2)
    fake = SimpleNamespace(strategy=FSDPStrategy.__new__(FSDPStrategy))
    with pytest.raises(ConfigError, match="FSDP shards them.*configs/strategy/ddp.yaml"):
        _fit_start(module, fake)


def _fit_start(module, trainer):
    from unittest.mock import PropertyMock, patch

    with patch.object(type(module), "trainer", new_callable=PropertyMock, return_value=trainer):
        module.on_fit_start()


LAUNCH_VARIABLES = (
    "NODE_RANK",
    "GROUP_RANK",
    "LOCAL_RANK",
    "RANK",
    "WORLD_SIZE",
    "TORCHELASTIC_RUN_ID",
    "SLURM_NTASKS",
    "SLURM_NTASKS_PER_NODE",
    "SLURM_PROCID",
    "SLURM_LOCALID",
    "SLURM_NODEID",
    "SLURM_JOB_NAME",
    "LSB_JOBID",
    "LSB_DJOB_RANKFILE",
)


@pytest.mark.parametrize(
    "variables,zero",
    [
        ({}, True),
        ({"NODE_RANK": "0"}, True),
        ({"NODE_RANK": "1"}, False),  # Lightning's rank_zero_only says 0 here until the trainer sets it
        ({"NODE_RANK": "0", "LOCAL_RANK": "1"}, False),
        (
            {
                "TORCHELASTIC_RUN_ID": "x",
                "RANK": "0",
                "LOCAL_RANK": "0",
                "GROUP_RANK": "0",
                "WORLD_SIZE": "2",
            },
            True,
        ),
        (
            {
                "TORCHELASTIC_RUN_ID": "x",
                "RANK": "1",
                "LOCAL_RANK": "0",
                "GROUP_RANK": "1",
                "WORLD_SIZE": "2",
            },
            False,
        ),
        (
            {
                "SLURM_NTASKS": "2",
                "SLURM_NTASKS_PER_NODE": "1",
                "SLURM_PROCID": "0",
                "SLURM_LOCALID": "0",
                "SLURM_NODEID": "0",
                "SLURM_JOB_NAME": "metalight",
            },
            True,
        ),
        (
            {
                "SLURM_NTASKS": "2",
                "SLURM_NTASKS_PER_NODE": "1",
                "SLURM_PROCID": "1",
                "SLURM_LOCALID": "0",
                "SLURM_NODEID": "1",
                "SLURM_JOB_NAME": "metalight",
            },
            False,
        ),
    ],
    ids=[
        "alone",
        "node0",
        "node1",
        "node0-local1",
        "torchrun-rank0",
        "torchrun-rank1",
        "srun-task0",
        "srun-task1",
    ],
)
def test_global_rank_zero_is_known_from_the_launch_before_the_trainer(monkeypatch, variables, zero):
    from metalight.strategies import launch_is_global_zero

    for name in LAUNCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert launch_is_global_zero() is zero


def test_a_lost_peer_is_one_line_and_other_errors_pass_through():
    from metalight.strategies import lost_rank_error

    gloo = RuntimeError(
        "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:9602: "
        "Connection reset by peer. This is typically caused by a remote worker hanging.\nmore"
    )
    error = lost_rank_error(gloo)
    assert error is not None and error.exit_code == 1
    assert (
        str(error).startswith(
            "global rank 0 lost the other ranks of this distributed run ([/pytorch/third_party/"
            "gloo/gloo/transport/tcp/pair.cc:537] Read error [127.0.0.1]:9602: Connection reset "
            "by peer): "
        )
        and "\n" not in str(error)
        and "--ckpt_path" in str(error)
    )
    assert lost_rank_error(RuntimeError("CUDA out of memory")) is None
    assert lost_rank_error(RuntimeError("judge API: The read operation timed out")) is None  # not a peer
    assert lost_rank_error(ValueError("Connection reset by peer")) is None
