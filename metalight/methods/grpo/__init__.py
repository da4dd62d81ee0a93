"""GRPO with TRL's losses: ``module`` (the LightningModule), ``rollout`` (sampling G completions per prompt),
``loss`` (the loss variants), ``rewards`` (the built-in rewards, registered here in the shared registry of
``metalight.methods.rewards``)."""

from metalight.methods.grpo import rewards as rewards  # registers alias_match, exact_match, token_f1
from metalight.methods.grpo.module import GRPOModule

__all__ = ["GRPOModule"]
