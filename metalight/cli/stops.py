"""Runs stopped by a signal end as a shell expects: one ``error:`` line and exit 130 (SIGINT) / 143 (SIGTERM).

Lightning turns SIGTERM into ``SIGTERMException`` at the next step or batch boundary, a ``SystemExit`` without
a code (exit 0: a preempted job would look finished), and SIGINT into ``sys.exit(1)``. Callbacks add notes to
the exception on the way out (``BaseException.add_note``: where the resumable checkpoint or the partial report
is); :func:`signal_stop` turns them into the line and the exit code.
"""

from __future__ import annotations

from lightning.pytorch.utilities.exceptions import SIGTERMException

EXIT_CODES = {"SIGINT": 130, "SIGTERM": 143}


def signal_stop(err: BaseException) -> tuple[str, int] | None:
    """``(message, exit code)`` when ``err`` ends a run stopped by SIGTERM or SIGINT, else ``None``."""
    if isinstance(err, SIGTERMException):
        name, stopped = "SIGTERM", err
    elif isinstance(err, KeyboardInterrupt):
        name, stopped = "SIGINT", err
    elif isinstance(err, SystemExit) and isinstance(err.__context__, KeyboardInterrupt):
        name, stopped = "SIGINT", err.__context__  # Lightning's graceful shutdown: sys.exit(1) after Ctrl-C
    else:
        return None
    notes = getattr(stopped, "__notes__", [])
    return f"stopped by {name}" + (f" {'; '.join(notes)}" if notes else ""), EXIT_CODES[name]
