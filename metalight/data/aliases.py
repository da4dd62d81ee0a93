"""Gold-answer aliases derived from typed answers (numbers, strings with a parenthetical, yes/no)."""

from __future__ import annotations

import re
from typing import Any

_TRAILING_PARENTHETICAL = re.compile(r"\s*\([^)]*\)\s*$")


def scalar_aliases(answer: Any) -> list[str] | None:
    """Aliases for a scalar answer: the text (plus the text without a trailing parenthetical, e.g. a year),
    or the number (plus its comma-grouped form from 10,000 up). ``None`` for list/dict/bool answers, which
    are not short answers."""
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        return None
    if isinstance(answer, int):
        return [str(answer)] + ([f"{answer:,}"] if abs(answer) >= 10_000 else [])
    if isinstance(answer, float):
        return [str(int(answer)) if answer.is_integer() else str(answer)]
    text = answer.strip()
    bare = _TRAILING_PARENTHETICAL.sub("", text)
    return list(dict.fromkeys(a for a in (text, bare) if a))


def number_text_aliases(text: str) -> list[str]:
    """A numeric answer written as text ("2280", "1,430", "3.50") with its plain and comma-grouped forms;
    other text is returned as is."""
    plain = text.strip().replace(",", "")
    try:
        value = float(plain)
    except ValueError:
        return [text.strip()]
    if value.is_integer() and "." not in plain:
        return list(dict.fromkeys([plain, f"{int(value):,}"]))
    return [plain]
