"""GRPO with TRL's losses: ``module`` (the LightningModule), ``rollout`` (sampling G completions per prompt),
``loss`` (the loss variants), ``advantages`` (group advantages). Its rewards are the shared completion rewards
of ``metalight.methods.rewards`` (``alias_match``, ``exact_match``, ``token_f1``) or any dotted path."""

from metalight.methods.grpo.module import GRPOModule

__all__ = ["GRPOModule"]
