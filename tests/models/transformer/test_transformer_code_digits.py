"""Code rows shared through FSQ digits: a fresh model equals the plain one, only code
rows move, the digit table spells FSQ's ids, bad offsets are refused."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transformer_factories import like, make_tiny

from unified_mm.models.image_tokenizer.fsq import FSQ
from unified_mm.models.transformer.code_digits import digit_one_hot

LEVELS, OFFSET = (4, 3, 2), 40  # 24 codes at ids [40, 64) of the tiny 128-id vocabulary


def test_digit_table_spells_fsq_ids():
  one_hot = digit_one_hot(LEVELS)
  digits = np.asarray(FSQ(LEVELS).digits(np.arange(24)))
  offsets = np.cumsum((0,) + LEVELS[:-1])
  expected = np.zeros((24, sum(LEVELS)))
  expected[np.arange(24)[:, None], digits + offsets] = 1
  np.testing.assert_array_equal(one_hot, expected)


def test_fresh_digit_model_is_the_plain_model_and_only_code_rows_move():
  # The digit tables are built last, so the same seed gives the same other parameters.
  plain, digits = make_tiny(3), make_tiny(3, code_levels=LEVELS, code_offset=OFFSET)
  tokens = jnp.array([[1, 41, 50, 63, 70, 2]])
  forward = jax.jit(lambda m, t: m(t))
  np.testing.assert_allclose(forward(digits, tokens), forward(plain, tokens), atol=1e-6)
  digits.code_digits.outputs[...] = jnp.ones_like(digits.code_digits.outputs[...])
  moved = np.asarray(jnp.abs(forward(digits, tokens) - forward(plain, tokens)).max((0, 1)) > 1e-6)
  assert set(np.nonzero(moved)[0]) == set(range(OFFSET, OFFSET + 24))
  # Input side: a code token's embedding moves, a text token's does not.
  digits.code_digits.inputs[...] = jnp.ones_like(digits.code_digits.inputs[...])
  hidden = jax.jit(lambda m, t: m.hidden_states(t))
  text_only = jnp.array([[1, 5, 6]])
  np.testing.assert_allclose(hidden(digits, text_only), hidden(plain, text_only), atol=1e-6)
  assert not np.allclose(hidden(digits, tokens), hidden(plain, tokens), atol=1e-3)


def test_codes_past_the_vocabulary_are_refused():
  with pytest.raises(ValueError, match="code_offset=120"):
    like(make_tiny(0), code_levels=LEVELS, code_offset=120)
