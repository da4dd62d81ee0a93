"""The keys of every method's ``report.json``, recorded once and compared on every run: a refactoring that
renames, drops or adds a report key fails here (``tests/fixtures/report_keys.json``).

A test that writes a report calls :func:`assert_report_keys` with a name for its kind of run. To record the
keys after an intended change, run the tests with ``METALIGHT_RECORD_REPORT_KEYS=1`` and commit the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

KEYS_FILE = Path(__file__).parent / "fixtures" / "report_keys.json"


def assert_report_keys(report: dict, kind: str) -> None:
    """``report``'s keys equal the ones recorded for ``kind`` (or are recorded, with the variable set)."""
    keys = sorted(report)
    recorded = json.loads(KEYS_FILE.read_text()) if KEYS_FILE.is_file() else {}
    if os.environ.get("METALIGHT_RECORD_REPORT_KEYS") == "1":
        recorded[kind] = keys
        KEYS_FILE.write_text(json.dumps(dict(sorted(recorded.items())), indent=1) + "\n")
        return
    assert kind in recorded, f"no keys recorded for {kind!r}; run with METALIGHT_RECORD_REPORT_KEYS=1"
    expected = set(recorded[kind])
    assert set(keys) == expected, (
        f"{kind}: report keys changed; added {sorted(set(keys) - expected)}, "
        f"missing {sorted(expected - set(keys))}"
    )
