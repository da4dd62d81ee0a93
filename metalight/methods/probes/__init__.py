"""Activation probes and the LLM Neurofeedback experiments (arXiv 2505.13763).

``module`` (:class:`ProbeModule`, which fits the axes), ``extraction`` (pooled residual-stream features),
``cache`` (per-layer safetensors cache), ``axes`` (PC and LR axes, ``ProbeSet``), ``scores`` (probe accuracy
and AUROC), ``steering_hook`` (α·axis forward hook), ``experiments`` (self-report, control, steering check),
``plots``; ``python -m metalight.methods.probes`` runs the experiments.
"""

from metalight.methods.probes.module import ProbeModule

__all__ = ["ProbeModule"]
