import doctest

import pytest
import torch

from metalight.metrics import alignment, calibration, collection, counts, metad, type2

torch.set_num_threads(1)


@pytest.mark.parametrize(
    "module", [type2, alignment, calibration, metad, collection, counts], ids=lambda module: module.__name__
)
def test_docstring_examples_hold(module):
    result = doctest.testmod(module)
    assert result.attempted > 0
    assert result.failed == 0
