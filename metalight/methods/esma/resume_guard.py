"""Refuse an ESMA resume whose settings would break exact resumption.

A checkpoint continues bit-identically only with the population, seeds, σ, noise scheme and questions per
iteration it was made with: member seeds and questions are drawn from (``es_seed``, global step). Resuming
with any of them changed is refused, listing each difference, unless the environment variable
``METALIGHT_ALLOW_RESUME_CHANGES`` names the changed settings (comma-separated, or ``all``); the allowed
changes are then kept on the module (``resume_changes``) and written to ``report.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from metalight.errors import ConfigError

EXACT_RESUME_KEYS = (
    "population_size",
    "es_seed",
    "sigma",
    "noise",
    "rank",
    "antithetic",
    "num_data_per_iteration",
    "stratify_questions",
)
OVERRIDE_ENV = "METALIGHT_ALLOW_RESUME_CHANGES"


def resume_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], keys: Sequence[str] = EXACT_RESUME_KEYS
) -> dict[str, dict[str, Any]]:
    """``{key: {"checkpoint": old, "now": new}}`` for every key in ``keys`` whose value changed."""
    return {
        key: {"checkpoint": saved[key], "now": current.get(key)}
        for key in keys
        if key in saved and saved[key] != current.get(key)
    }


def check_resume(module: Any, checkpoint: Mapping[str, Any], keys: Sequence[str] = EXACT_RESUME_KEYS) -> None:
    """Raise ``ConfigError`` listing the settings that differ from ``checkpoint``'s hyperparameters, unless
    ``METALIGHT_ALLOW_RESUME_CHANGES`` allows them; allowed changes go to ``module.resume_changes``."""
    changes = resume_differences(checkpoint.get("hyper_parameters") or {}, module.hparams, keys)
    allowed = {name.strip() for name in os.environ.get(OVERRIDE_ENV, "").split(",") if name.strip()}
    refused = {k: v for k, v in changes.items() if k not in allowed and "all" not in allowed}
    if refused:
        listed = ", ".join(
            f"{k}: {v['checkpoint']!r} in the checkpoint, {v['now']!r} now" for k, v in refused.items()
        )
        raise ConfigError(
            f"cannot resume exactly: {listed}; resume with the checkpoint's settings, or set "
            f"{OVERRIDE_ENV}={','.join(refused)} to continue with the new ones (recorded in the report)"
        )
    module.resume_changes = changes
