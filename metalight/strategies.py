"""Distributed strategies for Hugging Face causal LMs, and checks that fail fast with the fix.

``DecoderLayerFSDPStrategy`` is Lightning's FSDP with the wrap (and optional activation-checkpointing)
policy taken from the loaded model itself — the classes HF lists in ``_no_split_modules`` (e.g.
``LlamaDecoderLayer``, ``Qwen2DecoderLayer``) — so strategy configs never name a model-specific class.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
from lightning.pytorch.strategies import FSDPStrategy
from torch import nn

from metalight.errors import ConfigError, MissingPackageError

SHARDED = ("fsdp", "deepspeed")


def decoder_layer_classes(model: nn.Module) -> set[type[nn.Module]]:
    """The transformer-block classes of ``model`` (from HF's ``_no_split_modules``), found among its modules."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or ())
    classes = {type(m) for m in model.modules() if type(m).__name__ in names}
    if not classes:
        raise ConfigError(f"cannot find the decoder layer class of {type(model).__name__} (no _no_split_modules "
                          f"match); set the strategy's auto_wrap_policy explicitly")
    return classes


class DecoderLayerFSDPStrategy(FSDPStrategy):
    """FSDP wrapping each decoder layer of the model (discovered at setup, not hard-coded).

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
        return super()._setup_model(model)


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
    """The error for a method that needs the whole model on every rank (ES) combined with a sharded strategy."""
    return ConfigError(f"{method} perturbs whole weight tensors in place on every rank, but {sharded.upper()} "
                       f"shards them across ranks (shard-consistent noise is not implemented); use "
                       f"configs/strategy/ddp.yaml instead: population members are split over the ranks and "
                       f"only their rewards are exchanged")


def check_strategy(strategy: Any, accelerator: Any, model_class: type | None = None) -> None:
    """Fail fast, with the fix, on strategies that cannot work here (unknown name, ES with sharding,
    sharding on CPU, DeepSpeed not installed). ``model_class``: the LightningModule class, when known."""
    from lightning.pytorch.strategies import StrategyRegistry

    name = strategy_name(strategy)
    if isinstance(strategy, str) and name not in StrategyRegistry and name != "auto":
        noisy = ("find_unused", "offload", "notebook", "fork", "xla")
        known = ", ".join(sorted(k for k in StrategyRegistry if not any(n in k for n in noisy)))
        raise ConfigError(f"unknown strategy {strategy!r}; use one of {known}, or a fragment from "
                          f"configs/strategy/ (ddp, fsdp, deepspeed_zero2, deepspeed_zero3)")
    sharded = next((s for s in SHARDED if s in name), None)
    if sharded and getattr(model_class, "needs_full_replicas", False):
        raise full_replica_error(model_class.__name__, sharded)
    if sharded == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        raise MissingPackageError("the DeepSpeed strategy needs the deepspeed package: "
                                  "DS_BUILD_OPS=0 pip install '.[deepspeed]' torch==2.13.0")
    if sharded and str(accelerator).lower() == "cpu":
        raise ConfigError(f"{sharded.upper()} needs GPUs: Lightning refuses {sharded} with accelerator 'cpu'; on "
                          f"CPU use configs/strategy/ddp.yaml (or no strategy fragment)")
    if sharded and not torch.cuda.is_available():
        raise ConfigError(f"{sharded.upper()} needs GPUs and none is visible on this machine; on CPU use "
                          f"configs/strategy/ddp.yaml (or no strategy fragment)")
