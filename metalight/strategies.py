"""Distributed strategies for Hugging Face causal LMs, and checks that fail fast with the fix.

``DecoderLayerFSDPStrategy`` is Lightning's FSDP with the wrap (and optional activation-checkpointing)
policy taken from the loaded model itself — the classes HF lists in ``_no_split_modules`` (e.g.
``LlamaDecoderLayer``, ``Qwen2DecoderLayer``) — so strategy configs never name a model-specific class.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from lightning.fabric.plugins.environments import (
    ClusterEnvironment,
    LightningEnvironment,
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy
from torch import nn

from metalight.errors import ConfigError, LostRankError, MissingPackageError

SHARDED = ("fsdp", "deepspeed")


def decoder_layer_classes(model: nn.Module) -> set[type[nn.Module]]:
    """The transformer-block classes of ``model`` (from HF's ``_no_split_modules``), found among its
    modules."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    classes = {type(m) for m in model.modules() if type(m).__name__ in names}
    if not classes:
        raise ConfigError(
            f"cannot find the decoder layer class of {type(model).__name__} (no _no_split_modules "
            f"match); set the strategy's auto_wrap_policy explicitly"
        )
    return classes


class DecoderLayerFSDPStrategy(FSDPStrategy):
    """FSDP wrapping each decoder layer of the model (discovered at setup, not hard-coded).

    Runs on GPUs (nccl) and on CPU (``accelerator: cpu``, gloo): Lightning's accelerator check refuses only
    its own exact ``FSDPStrategy`` class on CPU, and on CPU torch's FSDP is given ``device_id=cpu`` where
    Lightning would pass the device index (``None`` on CPU, which FSDP reads as "the current CUDA device").

    Args:
        checkpoint_decoder_layers: activation checkpointing on every decoder layer (memory for compute).
        (other args: Lightning's ``FSDPStrategy``; ``use_orig_params`` defaults to True, which ``generate``
        under FSDP needs.)
    """

    def __init__(self, checkpoint_decoder_layers: bool = False, **kwargs: Any):
        kwargs.setdefault("use_orig_params", True)
        super().__init__(**kwargs)
        self.checkpoint_decoder_layers = checkpoint_decoder_layers

    def _setup_model(self, model: nn.Module) -> nn.Module:
        if "auto_wrap_policy" not in self.kwargs:
            from torch.distributed.fsdp.wrap import ModuleWrapPolicy

            classes = decoder_layer_classes(model)
            self.kwargs["auto_wrap_policy"] = ModuleWrapPolicy(classes)
            if self.checkpoint_decoder_layers and not self._activation_checkpointing_kwargs:
                self._activation_checkpointing_kwargs = {"auto_wrap_policy": ModuleWrapPolicy(classes)}
        if self.root_device.type == "cpu" and not _is_fsdp_wrapped(model):
            model = self._wrap_on_cpu(model)
        return super()._setup_model(model)

    def _wrap_on_cpu(self, model: nn.Module) -> nn.Module:
        # Lightning's own wrap passes device_id=None on CPU; wrapping here first makes it skip its wrap
        # (its auto_wrap_policy is then ignored, so it is taken out of kwargs to avoid its warning).
        from torch.distributed.fsdp import FullyShardedDataParallel

        kwargs = dict(self.kwargs)
        self.kwargs.pop("auto_wrap_policy", None)
        return FullyShardedDataParallel(
            module=model,
            cpu_offload=self.cpu_offload,
            mixed_precision=self.mixed_precision_config,
            sharding_strategy=self.sharding_strategy,
            device_id=torch.device("cpu"),
            **kwargs,
        )


def _is_fsdp_wrapped(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FullyShardedDataParallel

    return any(isinstance(m, FullyShardedDataParallel) for m in model.modules())


class DeepSpeedAnyDeviceStrategy(DeepSpeedStrategy):
    """Lightning's DeepSpeed strategy, also on CPU (``accelerator: cpu``, gloo).

    Lightning's ``setup_environment`` refuses any accelerator but CUDA before DeepSpeed is asked, and its
    ``setup_distributed`` wants a device index per rank; DeepSpeed itself runs ZeRO 1-3 on its CPU accelerator
    with gloo. Only those two checks are skipped on CPU; on GPUs this is
    Lightning's strategy unchanged. The optimizer is the module's (torch AdamW), not DeepSpeed's fused CPU
    Adam op, so ``DS_BUILD_OPS=0`` installs suffice.
    """

    def setup_environment(self) -> None:
        if self.root_device.type != "cpu":
            return super().setup_environment()
        return super(DeepSpeedStrategy, self).setup_environment()

    @contextmanager
    def model_sharded_context(self) -> Iterator[None]:
        """ZeRO-3: let transformers build the model under ``zero.Init`` itself (it then loads the checkpoint
        into the partitioned parameters); Lightning's bare ``zero.Init`` breaks HF's weight initialisation."""
        if not self.zero_stage_3:
            with super().model_sharded_context():
                yield
            return
        self._init_config_if_needed()
        from transformers.integrations.deepspeed import HfDeepSpeedConfig, unset_hf_deepspeed_config

        hf_config = HfDeepSpeedConfig(self.config)  # transformers keeps a weak reference: hold it here
        try:
            yield
        finally:
            # Only this model is built partitioned; later loads (e.g. rank 0's export copy) are plain.
            unset_hf_deepspeed_config()
            del hf_config

    def _auto_select_batch_size(self) -> int:
        # Lightning builds the train loader at strategy setup, before fit start, only to read its batch size
        # for DeepSpeed's throughput logging; data modules whose training set is handed over at fit start (the
        # judgment loop's JudgmentDataModule) have none yet. Their batch_size says the same without a loader.
        datamodule = getattr(self.lightning_module.trainer, "datamodule", None)
        size = getattr(datamodule, "batch_size", None)
        if isinstance(size, int) and size > 0:
            return size
        return super()._auto_select_batch_size()

    def _setup_model_and_optimizer(self, model: nn.Module, optimizer: Any, lr_scheduler: Any = None) -> tuple:
        if self.root_device.type != "cpu":
            return super()._setup_model_and_optimizer(model, optimizer, lr_scheduler)
        engine, ds_optimizer, _, _ = self._initialize_on_cpu(
            config=self.config,
            model=model,
            model_parameters=[p for p in model.parameters() if p.requires_grad],
            optimizer=optimizer,
            lr_scheduler=lr_scheduler,
        )
        return engine, ds_optimizer

    def _initialize_deepspeed_inference(self, model: nn.Module) -> None:
        if self.root_device.type != "cpu":
            return super()._initialize_deepspeed_inference(model)
        from lightning.pytorch.strategies.deepspeed import remove_module_hooks

        # Lightning's inference config, built the same way (validate / test / predict).
        config: dict[str, Any] = {"train_micro_batch_size_per_gpu": 1}
        config.update({k: self.config[k] for k in ("fp16", "bf16") if k in self.config})
        if self.zero_stage_3:
            config.update({k: self.config[k] for k in ("zero_allow_untested_optimizer", "zero_optimization")})
        remove_module_hooks(model)  # as Lightning: hooks of an earlier engine must go
        self.model, _, _, _ = self._initialize_on_cpu(
            config=config, model=model, optimizer=None, lr_scheduler=None, model_parameters=[]
        )
        return None

    def _initialize_on_cpu(self, **kwargs: Any) -> tuple:
        # As Lightning's calls, with the local rank as DeepSpeed's device rank (a CPU device has no index).
        import argparse

        import deepspeed

        return deepspeed.initialize(
            args=argparse.Namespace(device_rank=self.local_rank), dist_init_required=False, **kwargs
        )

    def setup_distributed(self) -> None:
        if self.root_device.type != "cpu":
            return super().setup_distributed()
        # Lightning's version also checks that device indices match local ranks: CPU devices have none.
        from lightning.fabric.utilities.seed import reset_seed

        reset_seed()
        self.set_world_ranks()
        _skip_shared_memory_op()
        self._init_deepspeed_distributed()


def _skip_shared_memory_op() -> None:
    """Stop DeepSpeed from JIT-compiling its shared-memory all-reduce for CPU ranks.

    At start DeepSpeed builds ``deepspeed_shm_comm`` with the host compiler: minutes on a 2-core machine, and
    a killed build leaves a file lock every later run waits on forever. gloo does the same collectives.
    """
    import deepspeed.ops

    deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False


def launch_environment() -> ClusterEnvironment:
    """The cluster environment Lightning's trainer will pick for this process, found before any trainer
    exists: torchrun (``TorchElasticEnvironment``), SLURM's ``srun``, LSF, MPI, else Lightning's own
    (``NODE_RANK``, ``LOCAL_RANK``); the same classes in the same order as Lightning's accelerator
    connector."""
    for environment in (TorchElasticEnvironment, SLURMEnvironment, LSFEnvironment, MPIEnvironment):
        if environment.detect():
            return environment()
    return LightningEnvironment()


def launch_is_global_zero() -> bool:
    """Whether this process will be global rank 0 of the run it starts, known before the trainer exists.

    Lightning's ``rank_zero_only.rank`` reads only ``RANK`` / ``LOCAL_RANK`` / ``SLURM_PROCID`` until the
    strategy sets it, so the first process of a node launched with ``NODE_RANK=1`` counts itself rank 0; under
    Lightning's own launch, global rank 0 is local rank 0 of node 0."""
    environment = launch_environment()
    if not isinstance(environment, LightningEnvironment):  # the launcher set every rank
        return environment.global_rank() == 0
    return environment.node_rank() == 0 and environment.local_rank() == 0


# torch's words for a collective or rendezvous whose peer is gone, where it raises a plain RuntimeError:
# gloo's TCP transport (reset or closed connections, its timeouts), the rendezvous store, NCCL.
# torch.distributed's DistError subclasses are recognised by type.
LOST_PEER = re.compile(
    r"gloo/transport/tcp|Connection (?:reset|closed) by peer|clients joined|"
    r"NCCL (?:error|communicator was aborted)|Watchdog caught collective operation timeout"
)


def lost_rank_error(err: BaseException) -> LostRankError | None:
    """A one-line :class:`LostRankError` for an error raised because another rank of the run is gone or never
    came (a failed collective or rendezvous), else ``None``. Lightning's strategies and torch raise these as
    ``RuntimeError`` / ``torch.distributed.DistError`` with multi-line text."""
    import torch.distributed as dist

    typed = isinstance(err, getattr(dist, "DistError", ()))
    if not typed and not (isinstance(err, RuntimeError) and LOST_PEER.search(str(err))):
        return None
    from lightning.pytorch.utilities import rank_zero_only

    detail = (str(err).strip().splitlines() or [type(err).__name__])[0].split(". This is typically")[0][:300]
    return LostRankError(
        f"global rank {rank_zero_only.rank} lost the other ranks of this distributed run ({detail}): a "
        f"node or process stopped (its log says why), a machine failed, or a node never joined "
        f"within the strategy's timeout; to go on, start every node again with --ckpt_path <run "
        f"dir>/checkpoints/last.ckpt (or the newest complete checkpoint)"
    )


def strategy_name(strategy: Any) -> str:
    """A lower-case name for a strategy given as a string, a class_path dict or an instance."""
    if isinstance(strategy, str):
        return strategy.lower()
    if hasattr(strategy, "as_dict"):  # a jsonargparse Namespace
        strategy = strategy.as_dict()
    if isinstance(strategy, dict):
        return str(strategy.get("class_path", "")).lower()
    return type(strategy).__name__.lower()


def full_replica_error(method: str, sharded: str) -> ConfigError:
    """The error for a method that needs the whole model on every rank (ES) combined with a sharded
    strategy."""
    return ConfigError(
        f"{method} perturbs whole weight tensors in place on every rank, but {sharded.upper()} "
        f"shards them across ranks (shard-consistent noise is not implemented); use "
        f"configs/strategy/ddp.yaml instead: population members are split over the ranks and "
        f"only their rewards are exchanged"
    )


def check_strategy(strategy: Any, accelerator: Any, model_class: type | None = None) -> None:
    """Fail fast, with the fix, on strategies that cannot work here (unknown name, ES with sharding, DeepSpeed
    not installed, Lightning's own FSDP / DeepSpeed class on CPU, a GPU accelerator with no GPU visible).
    The project's fragments run on CPU too. ``model_class``: the LightningModule class, when known."""
    from lightning.pytorch.strategies import StrategyRegistry

    name = strategy_name(strategy)
    if isinstance(strategy, str) and name not in StrategyRegistry and name != "auto":
        noisy = ("find_unused", "offload", "notebook", "fork", "xla")
        known = ", ".join(sorted(k for k in StrategyRegistry if not any(n in k for n in noisy)))
        raise ConfigError(
            f"unknown strategy {strategy!r}; use one of {known}, or a fragment from "
            f"configs/strategy/ (ddp, fsdp, deepspeed_zero2, deepspeed_zero3)"
        )
    sharded = next((s for s in SHARDED if s in name), None)
    if sharded and getattr(model_class, "needs_full_replicas", False):
        raise full_replica_error(model_class.__name__, sharded)
    if sharded == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise MissingPackageError(
            "the DeepSpeed strategy needs the deepspeed package: "
            "DS_BUILD_OPS=0 pip install '.[deepspeed]' torch==2.13.0"
        )
    accelerator = str(accelerator).lower()
    on_cpu = accelerator == "cpu" or (accelerator in ("auto", "none") and not torch.cuda.is_available())
    if sharded and on_cpu and "metalight.strategies" not in name:
        fragment = "fsdp" if sharded == "fsdp" else "deepspeed_zero3"
        raise ConfigError(
            f"Lightning's own {sharded.upper()} strategy refuses accelerator 'cpu'; use "
            f"configs/strategy/{fragment}.yaml (its metalight.strategies class runs on CPU, gloo)"
        )
    if sharded and not on_cpu and not torch.cuda.is_available():
        raise ConfigError(
            f"{sharded.upper()} with accelerator {accelerator!r} needs GPUs and none is visible on "
            f"this machine; on CPU add --trainer.accelerator cpu --trainer.precision 32-true (2 "
            f"processes: --trainer.devices 2)"
        )
