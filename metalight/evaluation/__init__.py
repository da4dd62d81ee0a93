"""Shared measurement machinery: the dual-prompt protocol (``dual_prompt``), the confidence sources beside it
(``sources``) and per-source summaries (``summary``). Every method's validation goes through this package."""
