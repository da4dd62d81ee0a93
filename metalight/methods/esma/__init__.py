"""ESMA: evolution strategies for metacognitive alignment (``module``: the paper's iteration).

The pieces: ``rewards`` (joint reward and ablations), ``selection`` (which parameters are perturbed),
``noise`` (noise schemes), ``perturb`` (in-place perturbation and restore), ``update`` (fitness shaping and
the ES gradient), ``population`` (the evaluation engine: member by member or batched low-rank),
``lowrank_forward`` and ``memory`` (the batched engine's forward and memory planning).
"""

from metalight.methods.esma.module import ESMAModule

__all__ = ["ESMAModule"]
