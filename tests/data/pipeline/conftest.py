"""Fixtures for the data pipeline tests: image codes, a vocab (the tokenizer is
tests/conftest.py's)."""

from __future__ import annotations

import pytest

from unified_mm.data.stand_in_codes import StandInCodes
from unified_mm.data.vocab import Vocab


@pytest.fixture(scope="session")
def codes_fn():
  return StandInCodes(grid=4, levels=4)


@pytest.fixture(scope="session")
def vocab(tokenizer, codes_fn):
  return Vocab(text_size=tokenizer.vocab_size, image_codes=codes_fn.num_codes)
