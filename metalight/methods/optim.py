"""What every method's optimizer and schedule share: the fused-AdamW base, HF Trainer's warm-up + decay
schedule, and the plain-data record of an optimizer / scheduler factory.

Every method takes ``optimizer`` (an ``OptimizerCallable``: parameters -> optimizer) and ``lr_scheduler`` (an
``LRSchedulerCallable``: optimizer -> scheduler, or ``None``) from the base module. A default must be a class,
never an instance, so each method's numbers live in its own package as a subclass whose constructor defaults
are that method's: ``metalight.methods.sft.optim.SFTAdamW`` (lr 1e-5),
``metalight.methods.grpo.optim.GRPOAdamW`` (lr 1e-6, TRL's), ``metalight.methods.probes.optim.ProbeAdam``
(lr 1e-2) and ``metalight.methods.esma.optim.ESMASGD`` (lr = α = 5e-4, the paper's). A config overrides any of
them under ``model.init_args.optimizer``; the learning rate is always the optimizer's own ``lr``.
"""

from __future__ import annotations

import functools
import importlib
import math
from collections.abc import Callable, Iterable
from typing import Any, Literal

import torch
from torch.optim.lr_scheduler import LambdaLR

from metalight.errors import ConfigError

LRSchedule = Literal["constant", "linear", "cosine"]


def fused_kernel_fits(params: Iterable[Any]) -> bool:
    """Whether torch's fused AdamW kernel takes these parameters (or param groups): plain tensors (not DTensor
    shards) on CPU or CUDA. HF Trainer's default (``adamw_torch_fused``); several times faster on CPU."""
    tensors = []
    for item in params:
        tensors.extend(item["params"] if isinstance(item, dict) else [item])
    return bool(tensors) and all(
        type(p.data) is torch.Tensor and p.device.type in ("cpu", "cuda") and p.is_floating_point()
        for p in tensors
    )


class FusedAdamW(torch.optim.AdamW):
    """torch's AdamW with the fused kernel where it fits (``fused=None``: chosen by
    :func:`fused_kernel_fits`); the base of the methods' AdamW defaults, which only change ``lr``.

    Args:
        lr: learning rate.
        betas: Adam's moment decays.
        eps: Adam's denominator term.
        weight_decay: decoupled weight decay (SFT gives biases and norm weights a group with none).
        fused: the fused kernel; ``None`` chooses it when every parameter is a plain CPU / CUDA tensor.
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        fused: bool | None = None,
    ):
        params = list(params)
        super().__init__(
            params,
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            fused=fused_kernel_fits(params) if fused is None else fused,
        )


def lr_factor(step: int, total: int | None, warmup_ratio: float, schedule: LRSchedule) -> float:
    """Learning-rate multiplier after ``step`` of ``total`` optimizer steps (HF Trainer's schedules).

    ``total`` may be ``None`` at step 0 (it is not known before the data is loaded): the factor is then 0
    during warm-up and 1 without it, as it would be for any total.
    """
    if total is None:
        return 0.0 if warmup_ratio > 0 else 1.0
    warmup = math.ceil(warmup_ratio * total)
    if step < warmup:
        return step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class WarmupDecay(LambdaLR):
    """HF Trainer's schedule, stepped once per optimizer step: a linear warm-up over ``warmup_ratio`` of the
    run's optimizer steps, then ``linear`` decay to 0, half a ``cosine``, or ``constant``.

    Args:
        warmup_ratio: share of the optimizer steps with a linear warm-up, in [0, 1).
        schedule: ``linear`` (to 0, HF's default), ``cosine`` or ``constant`` after the warm-up.
        total_steps: optimizer steps of the run; ``None``: the Trainer's (bound by the module, see
            :meth:`count_steps_with`).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_ratio: float = 0.0,
        schedule: LRSchedule = "linear",
        total_steps: int | None = None,
    ):
        if not 0 <= warmup_ratio < 1:
            raise ConfigError(f"lr_scheduler.init_args.warmup_ratio must be in [0, 1), got {warmup_ratio}")
        if schedule not in ("constant", "linear", "cosine"):
            raise ConfigError(
                f"lr_scheduler.init_args.schedule {schedule!r} is not one of constant, linear, cosine"
            )
        self.warmup_ratio, self.schedule, self.total_steps = warmup_ratio, schedule, total_steps
        self.start_step = 0  # the step the schedule restarts from (SFT's schedule_per_epoch)
        self._steps: Callable[[], int | None] | None = None
        super().__init__(optimizer, self.factor)

    def count_steps_with(self, steps: Callable[[], int | None]) -> None:
        """Read the run's optimizer steps from ``steps()`` when ``total_steps`` is not set (asked lazily: the
        Trainer knows them only once the data is loaded)."""
        self._steps = steps

    def factor(self, step: int) -> float:
        """The multiplier of the base learning rate at optimizer step ``step``."""
        if step == 0:
            return lr_factor(0, None, self.warmup_ratio, self.schedule)
        total = self.total_steps if self.total_steps is not None else self._steps() if self._steps else None
        return lr_factor(step - self.start_step, total, self.warmup_ratio, self.schedule)

    def restart(self, step: int) -> None:
        """Start the schedule again at optimizer step ``step`` (its learning rate becomes the step-0 one)."""
        self.start_step = step
        first = lr_factor(0, None, self.warmup_ratio, self.schedule)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * first

    def state_dict(self) -> dict[str, Any]:
        """LambdaLR's state without the bound step counter (it belongs to the live Trainer, not the
        checkpoint)."""
        state = super().state_dict()
        state.pop("_steps", None)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the schedule, keeping the step counter bound in this process."""
        steps = self._steps
        super().load_state_dict(state_dict)
        self._steps = steps


def factory_settings(factory: Any) -> dict[str, Any] | None:
    """How an optimizer / scheduler factory is recorded in ``hparams`` and reports: ``{"class_path",
    "init_args"}`` (plain data, so checkpoints load with ``weights_only``); ``None`` stays ``None``."""
    if factory is None or isinstance(factory, dict):
        return factory
    target, init_args = factory, {}
    if isinstance(factory, functools.partial):  # jsonargparse's (class among the args) or a user's partial
        target = next((a for a in factory.args if isinstance(a, type)), factory.func)
        init_args = dict(factory.keywords)
    return {
        "class_path": f"{target.__module__}.{getattr(target, '__qualname__', repr(target))}",
        "init_args": init_args,
    }


def factory_from_settings(value: Any) -> Callable[..., Any] | None:
    """A factory from what :func:`factory_settings` recorded (``load_from_checkpoint`` passes the recorded
    dict back); a callable or ``None`` is returned as it is."""
    if not isinstance(value, dict):
        return value
    module_name, _, name = value["class_path"].rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as err:
        raise ConfigError(
            f"cannot import {value['class_path']!r} ({err}); give an importable class_path"
        ) from err
    return functools.partial(target, **value.get("init_args", {}))
