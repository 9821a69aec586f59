"""Finite Scalar Quantization (Mentzer et al., 2023): a codebook without a codebook.

Each of the d = len(levels) channels is bounded with tanh to ~[-(L-1)/2, (L-1)/2]
and rounded to one of its L levels; the code is the tuple of levels and its
integer id the mixed-radix number they spell. Rounding passes gradients straight
through, so there is no codebook to collapse and no commitment loss to tune.

Codes are returned normalised to [-1, 1] (a level divided by L // 2); ids run
over [0, prod(levels)). Everything here is pure jnp and jit/vmap friendly.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_LEVELS = (8, 5, 5, 5)  # 1000 codes
# Shrinks the tanh bound a hair so an odd level count never rounds to L//2 + 1.
_EPS = 1e-3


class FSQ:
  """Quantiser for `levels` (a sequence of ints >= 2); holds no parameters."""

  def __init__(self, levels: Sequence[int] = DEFAULT_LEVELS):
    levels = tuple(int(l) for l in levels)
    if not levels or min(levels) < 2:
      raise ValueError(f"levels={levels}: need at least one channel, each with >= 2 levels")
    self.levels = levels
    self._levels = np.asarray(levels, dtype=np.int32)  # [d]
    self._basis = np.cumprod((1,) + levels[:-1]).astype(np.int32)  # [d]
    self._half_width = self._levels // 2  # [d]

  @property
  def dim(self) -> int:
    return len(self.levels)

  @property
  def codebook_size(self) -> int:
    return int(np.prod(self.levels))

  def bound(self, z: jax.Array) -> jax.Array:
    """[..., d] -> [..., d] in (-L/2, L/2); even L is shifted so rounding yields L values."""
    half_l = (self._levels - 1) * (1 + _EPS) / 2
    offset = np.where(self._levels % 2 == 0, 0.5, 0.0)
    shift = np.arctanh(offset / half_l)
    return jnp.tanh(z + shift) * half_l - offset

  def quantize(self, z: jax.Array) -> jax.Array:
    """[..., d] unbounded -> [..., d] codes in [-1, 1], straight-through rounding."""
    bounded = self.bound(z)
    rounded = bounded + jax.lax.stop_gradient(jnp.round(bounded) - bounded)
    return rounded / self._half_width

  def codes_to_ids(self, codes: jax.Array) -> jax.Array:
    """[..., d] normalised codes -> [...] int32 ids."""
    digits = jnp.round(codes * self._half_width + self._half_width).astype(jnp.int32)
    return (digits * self._basis).sum(-1).astype(jnp.int32)

  def digits(self, ids: jax.Array) -> jax.Array:
    """[...] int ids -> [..., d] int32 level indices, channel 0 least significant."""
    return (jnp.asarray(ids, jnp.int32)[..., None] // self._basis) % self._levels

  def unit_digits(self, ids: jax.Array) -> jax.Array:
    """[...] int ids -> [..., d] float32 level indices scaled to exactly [-1, 1] (the
    renderer's token features; `ids_to_codes` is the quantiser's own, asymmetric for even levels)."""
    return (2.0 * self.digits(ids) / (self._levels - 1) - 1.0).astype(jnp.float32)

  def ids_to_codes(self, ids: jax.Array, dtype=jnp.float32) -> jax.Array:
    """[...] int ids -> [..., d] normalised codes."""
    return ((self.digits(ids) - self._half_width) / self._half_width).astype(dtype)

  def __call__(self, z: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(codes [..., d], ids [...]) for unbounded z [..., d]."""
    codes = self.quantize(z)
    return codes, self.codes_to_ids(codes)
