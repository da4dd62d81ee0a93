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
from torchmetrics.aggregation import MeanMetric

from metalight.evaluation.dual_prompt import SampleResult, results_to_tensors
from metalight.metrics import DPrimeType2, MetaAlignment, Type2AUROC
from metalight.metrics.type2 import Correction


class PopulationMetacognition(nn.Module):
    """d′type2, AUROC₂, yes / no failure rates and the unparsed share of the population's answers.

    ``update(results)`` adds one member's results; ``compute()`` returns the values over every member since
    the last call (reduced over DDP ranks by torchmetrics, so every rank must call it) and resets:
    ``dprime_type2`` (z units), ``yes_failure_rate`` = P(wrong | yes), ``no_failure_rate`` = P(correct | no),
    ``meta_unparsed_rate`` (fraction of meta answers the strict parser did not read) and, with ``p_yes``,
    ``auroc_type2`` of P(yes). A value without the rows it needs (no correct answer, nobody said yes) is NaN.

    Args:
        dprime_correction: rates of 0 or 1 in d′type2 (as ``MetacognitionModule.dprime_correction``).
        p_yes: whether the answers carry P(yes) (first-token yes/no logits), so AUROC₂ can be computed.
    """

    def __init__(self, dprime_correction: Correction = "clip", p_yes: bool = True):
        super().__init__()
        self.dprime = DPrimeType2(correction=dprime_correction)
        self.alignment = MetaAlignment()
        self.unparsed = MeanMetric()
        self.auroc = Type2AUROC() if p_yes else None

    def update(self, results: Sequence[SampleResult]) -> None:
        """Add one member's scored answers."""
        device = self.dprime.yes_correct.device
        rows = {k: v.to(device) for k, v in results_to_tensors(results).items()}
        self.dprime.update(rows["correct"], rows["said_yes"])
        self.alignment.update(rows["correct"], rows["said_yes"])
        self.unparsed.update((~rows["parsed"]).float())
        if self.auroc is not None:
            self.auroc.update(rows["correct"], rows["confidence"])

    def compute(self) -> dict[str, float]:
        """The iteration's values (see class docstring), then reset for the next iteration."""
        metrics = [self.dprime, self.alignment, self.unparsed] + ([self.auroc] if self.auroc is not None else [])
        with warnings.catch_warnings():
            # One class missing is common in a few dozen rows; the NaN it gives is the logged record of it.
            warnings.filterwarnings("ignore", message=r"(d'type2|AUROC2) is NaN")
            alignment = self.alignment.compute()
            values = {"dprime_type2": self.dprime.compute()["dprime_type2"],
                      "yes_failure_rate": alignment["yes_failure_rate"],
                      "no_failure_rate": alignment["no_failure_rate"],
                      "meta_unparsed_rate": self.unparsed.compute()}
            if self.auroc is not None:
                values["auroc_type2"] = self.auroc.compute()
        for metric in metrics:
            metric.reset()
        return {k: float(v) for k, v in values.items()}

