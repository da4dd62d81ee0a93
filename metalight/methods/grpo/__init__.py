"""GRPO with TRL's losses: ``module`` (the LightningModule), ``rollout`` (sampling G completions per prompt),
``loss`` (the loss variants), ``rewards`` (the reward registry)."""

from metalight.methods.grpo.module import GRPOModule

__all__ = ["GRPOModule"]
