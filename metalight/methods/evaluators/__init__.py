"""Evaluation-only modules: every confidence source side by side (``ConfidenceEvalModule``), IDK answers
(``IDKEvalModule``) and remote API models (``APIEvalModule``)."""

from metalight.methods.evaluators.api import APIEvalModule
from metalight.methods.evaluators.modules import ConfidenceEvalModule, IDKEvalModule

__all__ = ["APIEvalModule", "ConfidenceEvalModule", "IDKEvalModule"]
