"""Every docstring example in ``metalight.metrics`` holds: each module of the package is found, none is listed
by hand (a new module's examples are run without touching this file)."""

import doctest
import importlib
import pkgutil

import pytest
import torch

import metalight.metrics

torch.set_num_threads(1)

MODULES = sorted(info.name for info in pkgutil.iter_modules(metalight.metrics.__path__, "metalight.metrics."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0


def test_the_package_has_examples_to_run():
    assert sum(doctest.testmod(importlib.import_module(name)).attempted for name in MODULES) > 10
