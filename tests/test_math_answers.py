"""Boxed-answer extraction and maths-answer equivalence (SymPy and the string fallback)."""

import pytest

from metalight.math_answers import (
    _parsable,
    boxed_equivalent,
    last_boxed,
    latex_to_python,
    math_equivalent,
    normalize_math,
)


def test_last_boxed_balances_braces_and_takes_the_last():
    assert last_boxed("first \\boxed{1} then \\boxed{\\frac{3}{2}} done") == "\\frac{3}{2}"
    assert last_boxed("no box here") is None and last_boxed("\\boxed{unclosed") is None


def test_normalisation_drops_latex_noise():
    assert normalize_math("$1,000\\text{ dollars}$.") == "1000"
    assert normalize_math("\\left( 2 \\right)") == "(2)" and normalize_math("50\\%") == "50"


@pytest.mark.parametrize(
    "answer, gold",
    [
        ("72", "72.0"),
        ("\\dfrac{3}{2}", "\\frac{3}{2}"),
        ("1.5", "\\frac{3}{2}"),
        ("\\sqrt{8}", "2\\sqrt{2}"),
        ("2 \\cdot \\sqrt{2}", "2\\sqrt{2}"),
        ("x^2+2x+1", "(x+1)^2"),
        ("1,234", "1234"),
    ],
)
def test_equivalent_answers(answer, gold):
    assert math_equivalent(answer, gold)


@pytest.mark.parametrize(
    "answer, gold", [("73", "72"), ("\\frac{2}{3}", "\\frac{3}{2}"), ("", "1"), ("2\\sqrt{3}", "2\\sqrt{2}")]
)
def test_different_answers(answer, gold):
    assert not math_equivalent(answer, gold)


def test_without_sympy_only_strings_and_numbers_count():
    assert math_equivalent("\\dfrac{3}{2}", "\\frac{3}{2}", use_sympy=False)
    assert not math_equivalent("\\sqrt{8}", "2\\sqrt{2}", use_sympy=False)
    assert math_equivalent("\\sqrt{8}", "2\\sqrt{2}", use_sympy=True)


def test_latex_rewrite_handles_nesting():
    assert latex_to_python("\\frac{\\sqrt{4}}{2}") == "((sqrt(4))/(2))"


def test_boxed_equivalence_needs_a_box():
    assert boxed_equivalent("Step 1: 48/2 = 24. So \\boxed{72}.", "72")
    assert not boxed_equivalent("The answer is 72.", "72")


def test_only_arithmetic_reaches_the_sympy_parser():
    # parse_expr evaluates Python: a reply's code must be refused before it, not executed
    assert not math_equivalent("__import__('os').getcwd()", "1")
    assert _parsable("2*sqrt(2) + x**2") and not _parsable("open(1)") and not _parsable("a.__class__")


@pytest.mark.parametrize(
    ("answer", "gold", "equal"),
    [
        ("5440001", "5440000", False),  # upstream math.json has a gold of 5440000: 1e-6 relative credited ±5
        ("5439995", "5440000", False),
        ("5,440,000", "5440000", True),
        ("5440001.0", "5440000", False),  # a whole-number decimal compares exactly
        ("5440000.0", "5440000", True),
        ("1/3", "\\frac{1}{3}", True),
        ("2/6", "1/3", True),
        ("1/3", "1/4", False),
        ("0.3333333", "1/3", True),  # a non-integral decimal may differ in its last digits (1e-6 relative)
        ("3.1415927", "3.14159265", True),
        ("3.1416", "3.14159265", False),
        ("2.5", "5/2", True),
    ],
)
def test_integers_and_rationals_compare_exactly_decimals_to_1e6(answer, gold, equal):
    assert math_equivalent(answer, gold, use_sympy=False) is equal
    assert math_equivalent(answer, gold) is equal
