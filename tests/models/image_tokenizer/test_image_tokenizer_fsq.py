"""FSQ: exact code <-> id round-trips, full level coverage, straight-through gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from unified_mm.models.image_tokenizer.fsq import FSQ


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (7, 5, 4), (2, 3), (8, 8, 8, 6, 5)])
def test_every_id_round_trips_through_its_code(levels):
  fsq = FSQ(levels)
  ids = jnp.arange(fsq.codebook_size)
  codes = fsq.ids_to_codes(ids)  # [V, d]
  assert codes.shape == (fsq.codebook_size, len(levels))
  np.testing.assert_array_equal(np.asarray(fsq.codes_to_ids(codes)), np.arange(fsq.codebook_size))
  # Distinct ids are distinct codes, all inside [-1, 1].
  assert len(np.unique(np.asarray(codes), axis=0)) == fsq.codebook_size
  assert float(jnp.abs(codes).max()) <= 1.0


def test_quantize_then_ids_then_codes_is_exact():
  fsq = FSQ((8, 5, 5, 5))
  z = 3.0 * jax.random.normal(jax.random.key(0), (4, 8, 8, 4))
  codes, ids = fsq(z)
  assert ids.shape == (4, 8, 8) and ids.dtype == jnp.int32
  assert int(ids.min()) >= 0 and int(ids.max()) < 1000
  np.testing.assert_array_equal(np.asarray(fsq.ids_to_codes(ids)), np.asarray(codes))
  np.testing.assert_array_equal(np.asarray(fsq.codes_to_ids(fsq.ids_to_codes(ids))), np.asarray(ids))


@pytest.mark.parametrize("levels", [(8, 5, 5, 5), (6, 3)])
def test_bound_reaches_every_level_and_no_more(levels):
  fsq = FSQ(levels)
  z = jnp.linspace(-20.0, 20.0, 4001)[:, None] * jnp.ones((1, len(levels)))
  codes = np.asarray(fsq.quantize(z))
  half = np.asarray(levels) // 2
  for ch, level in enumerate(levels):
    digits = np.unique(np.round(codes[:, ch] * half[ch] + half[ch]))
    np.testing.assert_array_equal(digits, np.arange(level))


def test_straight_through_gradient_is_the_bound_derivative():
  fsq = FSQ((8, 5, 5, 5))
  z = jax.random.normal(jax.random.key(1), (16, 4))
  w = jax.random.normal(jax.random.key(2), (16, 4))
  grad_q = jax.grad(lambda z: jnp.sum(fsq.quantize(z) * w))(z)
  half = jnp.asarray([4, 2, 2, 2], jnp.float32)
  grad_bound = jax.grad(lambda z: jnp.sum(fsq.bound(z) / half * w))(z)
  assert float(jnp.abs(grad_q).min()) > 0.0  # rounding did not cut the gradient
  np.testing.assert_allclose(np.asarray(grad_q), np.asarray(grad_bound), rtol=1e-6)


def test_rejects_bad_levels():
  with pytest.raises(ValueError, match="levels"):
    FSQ((8, 1))
