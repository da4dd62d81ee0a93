"""Lightning callbacks: report + samples writer, HF export."""

from metalight.callbacks.reporting import ReportWriter

__all__ = ["ReportWriter"]
