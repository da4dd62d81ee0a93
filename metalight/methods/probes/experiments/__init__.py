"""Neurofeedback experiments over a fitted probe run: report (and ``predexp``), control, steering check."""
