"""Fixtures of the transformer tests."""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))  # transformer_factories

from transformer_factories import make_tiny  # noqa: E402

from unified_mm.models.transformer import Transformer  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model() -> Transformer:
  return make_tiny()
