"""ICM: Internal Coherence Maximization (unsupervised elicitation), one file per part of the algorithm.

``module`` (the LightningModule), ``search`` (annealing), ``predictability`` (the model's score),
``consistency`` (rules per testbed), ``chunks``, ``agreement`` (agreement with gold and baselines),
``finetune``.
"""

from metalight.methods.icm.finetune import IterativeFineTuning
from metalight.methods.icm.module import ICMModule

__all__ = ["ICMModule", "IterativeFineTuning"]
