"""CPUTimeLimit stops a fit once its CPU budget is used, and refuses a non-positive budget."""

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from metalight.callbacks.cpu_budget import CPUTimeLimit
from metalight.errors import ConfigError


class Busy(LightningModule):
    """Burns CPU every step (a matmul loop) so that the budget runs out after a few steps."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        x = torch.randn(300, 300)
        for _ in range(20):
            x = torch.tanh(x @ x)
        return (self.w * x.mean()).sum()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(10_000, 1))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


def test_fit_stops_after_the_cpu_budget():
    limit = CPUTimeLimit(minutes=0.5 / 60)  # half a CPU second
    trainer = Trainer(
        max_epochs=1,
        callbacks=[limit],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    trainer.fit(Busy())
    assert 0 < trainer.global_step < 10_000
    assert limit.used_minutes() >= 0.5 / 60


def test_non_positive_budget_is_refused():
    with pytest.raises(ConfigError, match=r"CPUTimeLimit.minutes: 0 must be > 0"):
        CPUTimeLimit(0)
