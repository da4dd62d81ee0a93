"""Answer grading and yes/no parsing.

Correctness (``GradingMode``):
  * ``esma`` (default, as the paper): correct when a lower-cased gold alias is a substring of the lower-cased
    answer; empty aliases are dropped (an empty string would match everything).
  * ``normalized``: SQuAD normalisation (lower-case, drop punctuation and the articles a/an/the, collapse
    whitespace) on both sides, then containment of the alias as whole words (so "5" is not found in "15").
  * ``know_thyself``: Know-thyself's ``is_correct``: lower-case, keep only ``[a-z0-9\\s]``, collapse
    whitespace, then correct when an alias is contained in the answer or the answer in an alias. Upstream
    counts an empty answer as correct (the empty string is in every alias); here it is wrong.
  * ``final``: for questions with one exact short answer (the competence-band testbed): the answer's *final*
    value is compared, not any mention. A numeric gold is compared with the first number after the first ``=``
    ("7 + 5 = 12"), or else the last number ("The answer is 12."), thousands separators removed, as exact
    decimals; a one-letter gold with the last quoted letter ("... is 'D'.") or else the last stand-alone
    letter other than the words "I" and "a", case-insensitively; any other gold as ``normalized``. So an
    answer that echoes the question's operands ("316 + 0 = 317" for 316) or ends on a wrong total is not
    credited.
Exact match (normalised equality) is reported beside every mode. Under ``esma`` a correct answer credited only
through a numeric alias inside a longer number or an alias of at most two characters is also flagged
(:func:`suspect_match`, counted as ``suspect_matches`` in ``report.json``).

Yes/no parsing of a meta answer (``YesNoRule``):
  * ``esma`` (default, as the paper): the answer says yes when it contains the yes-word ("yes", "예", "是",
    "sí") anywhere, lower-cased; everything else is no.
  * ``strict``: reads the opening of the answer ("Yes, I do", "No.", "I don't know", "**Yes**", ...) and
    returns yes, no or unparsed. Unparsed answers are counted (``meta_unparsed_rate``) and scored as "no".
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

GradingMode = Literal["esma", "normalized", "know_thyself", "final"]
YesNoRule = Literal["esma", "strict"]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NOT_ALNUM = re.compile(r"[^a-z0-9\s]")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD answer normalisation: lower-case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    return " ".join(_ARTICLES.sub(" ", text).split())


def is_correct(answer: str, aliases: list[str], mode: GradingMode = "esma") -> bool:
    """Whether ``answer`` contains a gold alias, under grading ``mode`` (see module docstring)."""
    if mode == "esma":
        lowered = answer.lower()
        return any(alias.lower() in lowered for alias in aliases if alias)
    if mode == "normalized":
        padded = f" {normalize_answer(answer)} "
        return any(f" {alias_n} " in padded for alias_n in map(normalize_answer, aliases) if alias_n)
    if mode == "know_thyself":
        response = normalize_alnum(answer)
        if not response:
            return False
        return any(a in response or response in a for a in map(normalize_alnum, aliases) if a)
    if mode == "final":
        return any(final_value_matches(answer, alias) for alias in aliases if alias.strip())
    raise ValueError(f"unknown grading mode {mode!r}; use 'esma', 'normalized', 'know_thyself' or 'final'")


_SIGNED_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_QUOTED_LETTER = re.compile(r"[\'\"‘’“”`]([A-Za-z])[\'\"‘’“”`]")
# Unquoted, "I" and "a" are words (the pronoun, the article), not an answer letter.
_LONE_LETTER = re.compile(r"(?<![A-Za-z'])(?!I\b|[aA]\b)[A-Za-z](?![A-Za-z'])")


def final_number(answer: str) -> str | None:
    """The number an arithmetic answer ends on: the first after the first ``=``, else the last one; thousands
    separators removed (``None`` when the answer has no number)."""
    tail = answer.split("=", 1)[1] if "=" in answer else answer
    numbers = _SIGNED_NUMBER.findall(tail)
    if not numbers:
        return None
    chosen = numbers[0] if "=" in answer else numbers[-1]
    return chosen.replace(",", "").rstrip(".")


def final_value_matches(answer: str, gold: str) -> bool:
    """Whether ``answer``'s final value equals ``gold`` under the ``final`` rule (see module docstring)."""
    gold = gold.strip()
    if _SIGNED_NUMBER.fullmatch(gold):
        value = final_number(answer)
        return value is not None and Decimal(value) == Decimal(gold.replace(",", ""))
    if len(gold) == 1 and gold.isalpha():
        letters = _QUOTED_LETTER.findall(answer) or _LONE_LETTER.findall(answer)
        return bool(letters) and letters[-1].lower() == gold.lower()
    return is_correct(answer, [gold], "normalized")


_NUMBER = re.compile(r"[\d.,]*\d")


def suspect_match(answer: str, aliases: list[str]) -> bool:
    """Whether ESMA's substring rule credits ``answer`` only through a weak alias: a numeric alias found
    inside a longer number ("110" for "11") or an alias of at most two characters that is not the whole
    (normalised) answer ("I am not sure" for "I"). Such matches are counted as ``suspect_matches``."""
    lowered = answer.lower()
    matched = [alias.lower().strip() for alias in aliases if alias and alias.lower() in lowered]
    if not matched:
        return False
    for alias in matched:
        if _NUMBER.fullmatch(alias):
            if alias in _NUMBER.findall(lowered):
                return False
        elif len(alias) > 2 or normalize_answer(answer) == normalize_answer(alias):
            return False
    return True


def normalize_alnum(text: str) -> str:
    """Know-thyself's normalisation: lower-case, drop everything but ``[a-z0-9\\s]``, single spaces."""
    return " ".join(_NOT_ALNUM.sub("", text.lower()).split())


def exact_match(answer: str, aliases: list[str]) -> bool:
    """Whether the normalised answer equals a normalised alias."""
    normalized = normalize_answer(answer)
    return bool(normalized) and any(normalized == normalize_answer(alias) for alias in aliases if alias)


# ---------------------------------------------------------------------------------------------------------
# Yes/no parsing

ESMA_YES_WORDS = {"en": "yes", "ko": "예", "zh": "是", "es": "sí"}

_YES_OPENINGS = re.compile(
    r"^(yes\b|yeah|yep|yup|sure\b|absolutely|certainly|definitely|of course|correct\b|i do\b|i know\b|"
    r"i am (sure|certain|confident)|i'm (sure|certain|confident)|true\b)"
)
_NO_OPENINGS = re.compile(
    r"^(no\b|nope|nah|not really|not sure|unsure|uncertain|i don't|i do not|i dont|i'm not|i am not|"
    r"i can't|i cannot|i have no idea|no idea|sorry|unfortunately|false\b)"
)
_OTHER_LANGUAGE_OPENINGS = {
    "ko": (re.compile(r"^(예|네)"), re.compile(r"^(아니)")),
    "zh": (re.compile(r"^(是|知道)"), re.compile(r"^(否|不)")),
    "es": (re.compile(r"^(sí|si)\b"), re.compile(r"^(no)\b")),
}
_STRIP_CHARS = " \t\r\n\"'`*_#>-:.,!()[]“”‘’«»"


@dataclass(frozen=True)
class MetaDecision:
    """A parsed meta answer: ``said_yes`` (as the rule scores it) and whether the strict parser understood
    it."""

    said_yes: bool
    parsed: bool


def _language_base(language: str) -> str:
    return "zh" if language.startswith("zh") else language.split("_")[0].split("-")[0]


def parse_yes_no_strict(text: str, language: str = "en") -> Literal["yes", "no"] | None:
    """Read a yes/no reply robustly; ``None`` when it is neither (e.g. the model answered the question)."""
    cleaned = text.replace("’", "'").strip().lower()
    cleaned = re.sub(r"^(answer|response|a)\s*:\s*", "", cleaned.lstrip(_STRIP_CHARS))
    cleaned = cleaned.lstrip(_STRIP_CHARS)
    if not cleaned:
        return None
    base = _language_base(language)
    if base in _OTHER_LANGUAGE_OPENINGS:
        yes_re, no_re = _OTHER_LANGUAGE_OPENINGS[base]
        if no_re.match(cleaned):
            return "no"
        if yes_re.match(cleaned):
            return "yes"
    if _NO_OPENINGS.match(cleaned):
        return "no"
    if _YES_OPENINGS.match(cleaned):
        return "yes"
    # Otherwise accept a reply that names exactly one of the two words ("The answer is yes.").
    words = set(re.findall(r"[a-z']+", cleaned))
    has_yes, has_no = "yes" in words, bool(words & {"no", "don't", "not"})
    if has_yes != has_no:
        return "yes" if has_yes else "no"
    return None


def parse_meta_answer(text: str, rule: YesNoRule = "esma", language: str = "en") -> MetaDecision:
    """Score a meta answer under ``rule``; ``parsed`` always reports the strict parser's verdict."""
    strict = parse_yes_no_strict(text, language)
    if rule == "esma":
        yes_word = ESMA_YES_WORDS.get(_language_base(language), "yes")
        return MetaDecision(said_yes=yes_word in text.lower(), parsed=strict is not None)
    if rule == "strict":
        return MetaDecision(said_yes=strict == "yes", parsed=strict is not None)
    raise ValueError(f"unknown yes/no rule {rule!r}; use 'esma' or 'strict'")
