"""Lightning callbacks: report + samples writer, HF export."""

from metalight.callbacks.report_writer import ReportWriter

__all__ = ["ReportWriter"]
