"""Ability labels (can / uncertain / cannot) from a model's answers, and parsing of its judgments.

Thresholds on the share of correct answers (``LabelSettings``):

* ``binary``: ``can`` when the share is >= ``can_threshold`` (default 1.0: the greedy answer, or every
  sampled answer, is correct), else ``cannot``. Know-thyself's reported runs: one greedy answer.
* ``uncertainty``: ``can`` at >= ``can_threshold``; ``uncertain`` when the share is > 0 and
  >= ``uncertain_threshold``; else ``cannot``. The default 0.5 is the README's rule (100% / 50-99% / <50%);
  upstream's code labels any share in (0, 1) uncertain, which is ``uncertain_threshold: 0.0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from metalight.errors import ConfigError

Ability = Literal["can", "uncertain", "cannot"]
LabelMode = Literal["binary", "uncertainty"]
CLASSES: dict[str, tuple[str, ...]] = {
    "binary": ("can", "cannot"),
    "uncertainty": ("can", "uncertain", "cannot"),
}
_WORD_TO_ABILITY = {"yes": "can", "uncertain": "uncertain", "no": "cannot"}


@dataclass(frozen=True)
class LabelSettings:
    """How answers become ability labels and labels become judgment targets.

    Args:
        label_mode: ``binary`` (yes / no) or ``uncertainty`` (yes / uncertain / no).
        can_threshold: least share of correct answers labelled ``can``.
        uncertain_threshold: least share labelled ``uncertain`` (uncertainty mode; 0.0 = upstream code).
        include_reason: targets carry one short reason before the box (upstream's ``include_reason``).
    """

    label_mode: LabelMode = "binary"
    can_threshold: float = 1.0
    uncertain_threshold: float = 0.5
    include_reason: bool = False

    def __post_init__(self):
        if not 0 < self.can_threshold <= 1 or not 0 <= self.uncertain_threshold <= self.can_threshold:
            raise ConfigError(
                f"labels: need 0 <= uncertain_threshold <= can_threshold <= 1 and "
                f"can_threshold > 0, "
                f"got {self.uncertain_threshold} and {self.can_threshold}"
            )

    @property
    def classes(self) -> tuple[str, ...]:
        """The ability classes of this mode, most able first."""
        return CLASSES[self.label_mode]


def classify_ability(fraction_correct: float, settings: LabelSettings | None = None) -> Ability:
    """The ability class of a question the model answered correctly ``fraction_correct`` of the time
    (``settings``: default ``LabelSettings()``)."""
    settings = LabelSettings() if settings is None else settings
    if fraction_correct >= settings.can_threshold:
        return "can"
    if (
        settings.label_mode == "uncertainty"
        and fraction_correct > 0
        and fraction_correct >= settings.uncertain_threshold
    ):
        return "uncertain"
    return "cannot"


def parse_judgment(text: str, label_mode: LabelMode = "binary") -> tuple[Ability, bool]:
    """``(ability, parsed)`` of a judgment reply, read as upstream's ``parse_judgment_binary`` /
    ``parse_judgment_uncertainty`` (``scripts/inference_ddp.py``): lower-cased, ``boxed{yes}`` anywhere, then
    (uncertainty mode) ``boxed{uncertain}``, then ``boxed{no}``; else the reply stripped is the bare word;
    anything else is ``cannot`` with ``parsed=False``. The box must hold the word exactly: ``\\boxed{ yes }``
    is not read (``cannot``, unparsed), and a reply with several boxes is read by that order, not by position.
    """
    lowered = text.lower()
    words = [w for w, ability in _WORD_TO_ABILITY.items() if ability in CLASSES[label_mode]]
    for word in words:
        if f"boxed{{{word}}}" in lowered:
            return _WORD_TO_ABILITY[word], True
    bare = lowered.strip()
    if bare in words:
        return _WORD_TO_ABILITY[bare], True
    return "cannot", False
