"""Train-time metacognition of one ES iteration, pooled over every member's answers on every rank.

As upstream ESMA (``scripts/train_es.py`` logs ``train/d_prime_type2`` and the failure rates each iteration),
the rows are the population's: each member's answers to the iteration's questions under its own
perturbation, N × questions rows in all. They say whether the population's self-reports track its
correctness while it trains, without waiting for validation on the unperturbed weights.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from torch import nn

from metalight.evaluation.dual_prompt import SampleResult, results_to_tensors
from metalight.metrics import MetacognitionMetrics
from metalight.metrics.type2 import Correction

# The registry metrics logged as train/<name>; AUROC₂ only when the answers carry P(yes).
NAMES = ("dprime_type2", "yes_failure_rate", "no_failure_rate", "meta_unparsed_rate")


class PopulationMetacognition(nn.Module):
    """d′type2, AUROC₂, yes / no failure rates and the unparsed share of the population's answers.

    ``update(results)`` adds one member's results; ``compute()`` returns the values over every member since
    the last call (the rows are gathered over DDP ranks by torchmetrics, so every rank must call it) and
    resets: ``dprime_type2`` (z units), ``yes_failure_rate`` = P(wrong | yes), ``no_failure_rate`` =
    P(correct | no), ``meta_unparsed_rate`` (fraction of meta answers the strict parser did not read) and,
    with ``p_yes``, ``auroc_type2`` of P(yes), each computed by the metric registry's function. A value
    without the rows it needs (no correct answer, nobody said yes) is NaN.

    Args:
        dprime_correction: rates of 0 or 1 in d′type2 (as ``DualPromptModule.dprime_correction``).
        p_yes: whether the answers carry P(yes) (first-token yes/no logits), so AUROC₂ can be computed.
    """

    def __init__(self, dprime_correction: Correction = "clip", p_yes: bool = True):
        super().__init__()
        self.answers = MetacognitionMetrics(
            dprime_correction=dprime_correction, names=(*NAMES, "auroc_type2") if p_yes else NAMES
        )

    def update(self, results: Sequence[SampleResult]) -> None:
        """Add one member's scored answers."""
        rows = {k: v.to(self.answers.device) for k, v in results_to_tensors(results).items()}
        self.answers.update(**rows)

    def compute(self) -> dict[str, float]:
        """The iteration's values (see class docstring), then reset for the next iteration."""
        with warnings.catch_warnings():
            # One class missing is common in a few dozen rows; the NaN it gives is the logged record of it.
            warnings.filterwarnings("ignore", message=r".* is NaN: ")
            values = self.answers.compute()
        self.answers.reset()
        return values
