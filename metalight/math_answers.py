"""Final answers of step-by-step maths solutions: the last ``\\boxed{...}`` and whether two answers are equal.

Equivalence (:func:`math_equivalent`): the normalised strings are equal (LaTeX spacing,
``\\left``/``\\right``, ``\\text{..}`` units, ``$``, a trailing period and thousands commas dropped), else
both parse as numbers (integers, ``a/b``, decimals) and are equal — exactly, unless one side is a decimal that
is not a whole number, which may differ by 1e-6 relative (rounding in the last digits: ``0.3333333`` =
``1/3``; ``5440001`` ≠ ``5440000``, ``5440001.0`` ≠ ``5440000``) — else SymPy — when it is importable — parses
both after a LaTeX → Python rewrite (``\\frac``, ``\\sqrt``, ``\\cdot``, ``^``, ``\\pi``) and their difference
simplifies to 0. Without SymPy only the first two rules apply. No model is involved, so the verdict is
reproducible.
"""

from __future__ import annotations

import math
import re
import tokenize
from fractions import Fraction

_SPACING = re.compile(r"\\[,;:! ]|\\quad|\\qquad|\\left|\\right|\\displaystyle|\$")
_TEXT = re.compile(r"\\(?:text|mathrm|textbf|mbox)\{([^{}]*)\}")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def last_boxed(text: str) -> str | None:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) in ``text``, braces balanced; ``None``
    when there is none or its braces never close."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth, begin = 1, i
    while i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i].strip()
        i += 1
    return None


def normalize_math(answer: str) -> str:
    """A canonical string of a maths answer: no LaTeX spacing or delimiters, units in ``\\text{}`` dropped,
    ``\\dfrac`` read as ``\\frac``, no thousands commas, degrees and percent signs and trailing periods
    removed, no whitespace."""
    text = _SPACING.sub("", answer)
    text = _TEXT.sub("", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("^\\circ", "")
    text = text.replace("^{\\circ}", "").replace("\\%", "").replace("%", "")
    text = _THOUSANDS.sub("", text)
    return "".join(text.split()).rstrip(".")


_INTEGER_FRAC = re.compile(r"(-?)\\frac\{(-?\d+)\}\{(\d+)\}")


def _number(text: str) -> Fraction | None:
    """The exact value of an integer, ``a/b``, ``\\frac{a}{b}`` or decimal literal (``None`` for anything
    else)."""
    if frac := _INTEGER_FRAC.fullmatch(text):
        text = f"{frac.group(1)}{frac.group(2)}/{frac.group(3)}".replace("--", "")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def _non_integral_decimal(text: str, value: Fraction) -> bool:
    return value.denominator != 1 and "/" not in text


def _numbers_equal(a: str, b: str, x: Fraction, y: Fraction) -> bool:
    """Equal values; 1e-6 relative tolerance only when a side is a decimal with a fractional part."""
    if x == y:
        return True
    if _non_integral_decimal(a, x) or _non_integral_decimal(b, y):
        return math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-9)
    return False


_FRAC = re.compile(r"\\frac\{([^{}]*)\}\{([^{}]*)\}")
_FRAC_SHORT = re.compile(r"\\frac(\d)(\d)")
_SQRT = re.compile(r"\\sqrt\{([^{}]*)\}")


def latex_to_python(text: str) -> str:
    """A rewrite of simple LaTeX maths (fractions, roots, powers, ``\\cdot``/``\\times``, ``\\pi``) into
    Python syntax for SymPy's parser; anything else is left as written (and the parse may then fail)."""
    previous = None
    while previous != text:  # nested fractions and roots unwrap from the inside out
        previous = text
        text = _FRAC.sub(r"((\1)/(\2))", text)
        text = _FRAC_SHORT.sub(r"((\1)/(\2))", text)
        text = _SQRT.sub(r"sqrt(\1)", text)
    text = text.replace("\\cdot", "*").replace("\\times", "*").replace("\\pi", "pi").replace("^", "**")
    return text.replace("{", "(").replace("}", ")")


_SAFE = re.compile(r"[0-9a-zA-Z+\-*/().\s]*")
_NAMES = re.compile(r"[a-zA-Z]+")
_ALLOWED_NAMES = {"sqrt", "pi"}


def _parsable(expression: str) -> bool:
    """Only arithmetic, single-letter variables, ``sqrt`` and ``pi``: SymPy's parser evaluates Python, and the
    text comes from a model, so nothing else may reach it."""
    return bool(_SAFE.fullmatch(expression)) and all(
        len(n) == 1 or n in _ALLOWED_NAMES for n in _NAMES.findall(expression)
    )


def _sympy_equal(a: str, b: str) -> bool | None:
    """``True``/``False`` when SymPy parses both, ``None`` when it is missing or cannot parse one of them."""
    try:
        import sympy
        from sympy.parsing.sympy_parser import (
            implicit_multiplication_application,
            parse_expr,
            standard_transformations,
        )
    except ImportError:
        return None
    left_text, right_text = latex_to_python(a), latex_to_python(b)
    if not (_parsable(left_text) and _parsable(right_text)):
        return None
    transformations = standard_transformations + (implicit_multiplication_application,)
    try:
        left = parse_expr(left_text, transformations=transformations, evaluate=True)
        right = parse_expr(right_text, transformations=transformations, evaluate=True)
        return bool(sympy.simplify(left - right) == 0)
    except (
        SyntaxError,
        TypeError,
        ValueError,
        AttributeError,
        ZeroDivisionError,
        sympy.SympifyError,
        tokenize.TokenError,
    ):
        return None


def math_equivalent(answer: str, gold: str, use_sympy: bool = True) -> bool:
    """Whether maths answer ``answer`` equals ``gold`` (see the module docstring for the rules)."""
    a, b = normalize_math(answer), normalize_math(gold)
    if not a or not b:
        return False
    if a == b:
        return True
    x, y = _number(a), _number(b)
    if x is not None and y is not None:
        return _numbers_equal(a, b, x, y)
    return bool(use_sympy and _sympy_equal(a, b))


def boxed_equivalent(completion: str, gold: str, use_sympy: bool = True) -> bool:
    """Whether the last ``\\boxed{}`` of ``completion`` equals ``gold`` (a completion without one is
    wrong)."""
    boxed = last_boxed(completion)
    return boxed is not None and math_equivalent(boxed, gold, use_sympy)
