"""Activation probes and the LLM Neurofeedback experiments (arXiv 2505.13763).

``extraction`` (pooled residual-stream features), ``cache`` (per-layer safetensors cache), ``axes`` (PC and
LR axes, ``ProbeSet``), ``steering`` (α·axis forward hook), ``experiments`` (report, control, steering check),
``plots``. The Lightning module that fits the axes is :class:`metalight.methods.probes.ProbeModule`.
"""
