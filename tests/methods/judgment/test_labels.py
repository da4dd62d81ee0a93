"""Ability thresholds (README vs upstream code) and judgment parsing."""

import pytest

from metalight.errors import ConfigError
from metalight.methods.judgment.labels import LabelSettings, classify_ability, parse_judgment

README = LabelSettings(label_mode="uncertainty")
CODE = LabelSettings(label_mode="uncertainty", uncertain_threshold=0.0)


@pytest.mark.parametrize(
    "fraction, readme, code",
    [
        (1.0, "can", "can"),
        (0.8, "uncertain", "uncertain"),
        (0.5, "uncertain", "uncertain"),
        (0.4, "cannot", "uncertain"),
        (0.1, "cannot", "uncertain"),
        (0.0, "cannot", "cannot"),
    ],
)
def test_uncertainty_thresholds_readme_and_upstream_code(fraction, readme, code):
    assert classify_ability(fraction, README) == readme
    assert classify_ability(fraction, CODE) == code


def test_binary_labels_are_can_only_when_all_answers_are_right():
    assert classify_ability(1.0) == "can" and classify_ability(0.8) == "cannot"
    assert classify_ability(0.6, LabelSettings(can_threshold=0.6)) == "can"


def test_bad_thresholds_are_a_config_error():
    with pytest.raises(ConfigError, match="uncertain_threshold <= can_threshold"):
        LabelSettings(can_threshold=0.4, uncertain_threshold=0.5)


@pytest.mark.parametrize(
    "text, mode, expected",
    [
        ("\\boxed{yes}", "binary", ("can", True)),
        ("I lack the necessary knowledge. \\boxed{no}", "binary", ("cannot", True)),
        ("BOXED{Yes}", "binary", ("can", True)),
        ("\\boxed{ yes }", "binary", ("cannot", False)),  # upstream reads only the exact "boxed{yes}"
        ("\\boxed{no} on reflection \\boxed{yes}", "binary", ("can", True)),  # upstream checks yes first
        ("\\boxed{uncertain} or \\boxed{no}", "uncertainty", ("uncertain", True)),
        ("yes", "binary", ("can", True)),
        ("\\boxed{uncertain}", "uncertainty", ("uncertain", True)),
        ("\\boxed{uncertain}", "binary", ("cannot", False)),
        ("Paris is the capital.", "binary", ("cannot", False)),
        ("", "uncertainty", ("cannot", False)),
    ],
)
def test_parse_judgment(text, mode, expected):
    assert parse_judgment(text, mode) == expected
