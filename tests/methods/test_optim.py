"""The methods' default optimizers (each in its package) and the shared schedule: defaults by hand, the HF
schedule by hand, and how a factory is recorded in hparams (plain data that builds the same factory back)."""

from functools import partial

import pytest
import torch
from torch import nn

from metalight.errors import ConfigError
from metalight.methods.esma.optim import ESMASGD
from metalight.methods.grpo.optim import GRPOAdamW
from metalight.methods.optim import WarmupDecay, factory_from_settings, factory_settings, fused_kernel_fits
from metalight.methods.probes.optim import ProbeAdam
from metalight.methods.sft.optim import SFTAdamW


def params():
    return [nn.Parameter(torch.ones(2, 2)), nn.Parameter(torch.zeros(2))]


def test_each_method_default_carries_its_numbers():
    assert SFTAdamW(params()).defaults["lr"] == 1e-5 and SFTAdamW(params()).defaults["weight_decay"] == 0.0
    assert GRPOAdamW(params()).defaults["lr"] == 1e-6 and GRPOAdamW(params()).defaults["weight_decay"] == 0.0
    assert ProbeAdam(params()).defaults["lr"] == 1e-2
    sgd = ESMASGD(params())
    assert sgd.defaults["lr"] == 5e-4 and sgd.defaults["momentum"] == 0.0
    assert SFTAdamW(params()).defaults["fused"] is True and fused_kernel_fits(params())
    groups = [{"params": params()[:1]}, {"params": params()[1:], "weight_decay": 0.0}]
    assert SFTAdamW(groups, weight_decay=0.1).param_groups[1]["weight_decay"] == 0.0


def test_sft_adamw_steps_like_torch_adamw():
    ours, theirs = params(), params()
    for group, optimizer in (
        (ours, SFTAdamW(ours, lr=0.1, weight_decay=0.01)),
        (theirs, torch.optim.AdamW(theirs, lr=0.1, weight_decay=0.01)),
    ):
        for p in group:
            p.grad = torch.full_like(p, 0.5)
        optimizer.step()
    assert all(torch.allclose(a, b) for a, b in zip(ours, theirs))


def test_warmup_decay_by_hand():
    optimizer = torch.optim.SGD(params(), lr=1.0)
    schedule = WarmupDecay(optimizer, warmup_ratio=0.2, schedule="linear", total_steps=10)
    lrs = []
    for _ in range(10):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    # warm-up ceil(0.2 · 10) = 2 steps: 0, 1/2; then linear from 1 at step 2 to 0 at step 10
    assert lrs == pytest.approx([0.0, 0.5, 1.0, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125])
    cosine = WarmupDecay(torch.optim.SGD(params(), lr=1.0), schedule="cosine", total_steps=4)
    assert [cosine.factor(s) for s in (1, 2, 4)] == pytest.approx([0.5 * (1 + 2**-0.5), 0.5, 0.0])


def test_warmup_decay_reads_the_run_length_lazily_and_restarts():
    schedule = WarmupDecay(torch.optim.SGD(params(), lr=1.0), warmup_ratio=0.5)
    schedule.count_steps_with(lambda: 4)
    assert [schedule.factor(s) for s in range(5)] == [0.0, 0.5, 1.0, 0.5, 0.0]
    schedule.restart(4)
    assert schedule.optimizer.param_groups[0]["lr"] == 0.0 and schedule.factor(5) == 0.5
    assert "_steps" not in schedule.state_dict()  # the bound counter is not checkpointed


def test_bad_schedule_settings_name_the_key():
    with pytest.raises(
        ConfigError, match=r"^lr_scheduler.init_args.warmup_ratio must be in \[0, 1\), got 1.5"
    ):
        WarmupDecay(torch.optim.SGD(params(), lr=1.0), warmup_ratio=1.5)


def test_a_factory_is_recorded_as_data_and_built_back():
    recorded = factory_settings(partial(torch.optim.SGD, lr=0.25))
    assert recorded == {"class_path": "torch.optim.sgd.SGD", "init_args": {"lr": 0.25}}
    assert factory_settings(SFTAdamW) == {
        "class_path": "metalight.methods.sft.optim.SFTAdamW",
        "init_args": {},
    }
    assert factory_settings(None) is None
    rebuilt = factory_from_settings(recorded)(params())
    assert type(rebuilt) is torch.optim.SGD and rebuilt.defaults["lr"] == 0.25
