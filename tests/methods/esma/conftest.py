"""Fixtures for the ES tests: a fresh tiny random Llama per test (tests perturb weights in place)."""

import pytest

from tests.conftest import build_tiny_llama


@pytest.fixture
def fresh(tiny):
    """``(model, tokenizer)``: a new tiny random Llama (same weights as ``tiny``) that a test may modify."""
    _, tokenizer = tiny
    return build_tiny_llama(len(tokenizer)), tokenizer
