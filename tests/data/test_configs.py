"""Every data fragment under configs/data/ composes with an experiment config and parses (--print_config)."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FRAGMENTS = sorted((ROOT / "configs" / "data").glob("*.yaml"))


@pytest.mark.parametrize("fragment", FRAGMENTS, ids=lambda p: p.name)
def test_fragment_composes_with_quickstart(fragment, composed_config):
    printed = composed_config(fragment)
    expected = yaml.safe_load(fragment.read_text())["data"]
    assert printed["data"]["class_path"] == expected["class_path"]
    for key, value in (expected.get("init_args") or {}).items():
        assert printed["data"]["init_args"][key] == value


# Modules that wrap another dataset or method-made rows; their configs live beside the method (configs/sft/,
# configs/judgment/).
METHOD_DATA = {"__init__", "prompt_completion", "judgment"}


def test_every_dataset_module_has_a_fragment():
    modules = {p.stem for p in (ROOT / "metalight/data/sources").glob("*.py") if p.stem not in METHOD_DATA}
    classes = {yaml.safe_load(f.read_text())["data"]["class_path"].split(".")[-2] for f in FRAGMENTS}
    assert modules <= classes
