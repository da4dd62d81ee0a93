"""ESMA: evolution strategies for metacognitive alignment (``module``: the paper's iteration).

The pieces: ``rewards`` (joint reward and ablations), ``selection`` (which parameters are perturbed),
``noise`` (noise schemes), ``perturb`` (in-place perturbation and restore), ``update`` (fitness shaping and
the ES gradient), ``engine`` (how the population is evaluated: member by member or batched low-rank, the
``engine:`` argument) with ``batched``, ``lowrank_forward`` and ``memory`` (the batched engine's evaluation,
per-row forward and memory planning), ``population_metrics`` (train-time metacognition of the population).
"""

from metalight.methods.esma.engine import PopulationEngine
from metalight.methods.esma.module import ESMAModule

__all__ = ["ESMAModule", "PopulationEngine"]
