"""Image-code embeddings shared through the codes' FSQ digits.

An FSQ code is a tuple of digits (fsq.py), so code 517 and code 518 share
three of their four. With `code_levels` the transformer adds, to every code's
own input and output embedding row, the sum of one learned vector per digit
value (23 vectors for levels (8, 5, 5, 5) against 1,000 rows). A digit's
vector is trained whenever any of the codes holding it is read or written, so
what one code teaches carries over to its neighbours. The output half makes
the code logits a code's own term plus a sum of per-digit terms; at zero
own terms the softmax over codes would be a product of independent digit
softmaxes; the own terms keep every code free to differ from that.

Measured at the main job's 300 steps (docs/quality.md, "Code rows shared
through their digits"): the transformer learns 1.0 of an object cell's 6.3
nats instead of 0.45, but the drawings it writes score no better on the
benchmark's prompts, so the shapes preset leaves it off. The digits alone,
without the own terms, learn the codes worse (held-out image loss 3.10
against 2.92).

Both tables start at zero, so a fresh model begins as the plain one.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unified_mm.models.image_tokenizer.fsq import FSQ
from unified_mm.models.transformer.layers import make_param


@functools.lru_cache
def digit_one_hot(levels: tuple[int, ...]) -> np.ndarray:
  """[prod(levels), sum(levels)] 0/1, read-only: row c marks code c's digits
  (fsq.FSQ.digits order, channel 0 least significant), each channel's levels in a
  block of their own. A constant, also when first asked for inside a traced function."""
  fsq = FSQ(levels)
  with jax.ensure_compile_time_eval():
    digits = np.asarray(fsq.digits(np.arange(fsq.codebook_size)))  # [N, d]
  offsets = np.cumsum((0,) + fsq.levels[:-1])
  out = np.zeros((fsq.codebook_size, sum(fsq.levels)), np.float32)
  np.put_along_axis(out, digits + offsets, 1.0, axis=1)
  out.flags.writeable = False
  return out


class CodeDigits(nnx.Module):
  """Digit vectors added to the code rows [offset, offset + prod(levels)) of a vocabulary."""

  def __init__(self, levels: Sequence[int], offset: int, vocab_size: int, d_model: int, *,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.levels = tuple(int(l) for l in levels)
    self.offset = int(offset)
    self.num_codes = int(np.prod(self.levels))
    if self.offset < 0 or self.offset + self.num_codes > vocab_size:
      raise ValueError(f"code_offset={offset} + {self.num_codes} codes (code_levels="
                       f"{self.levels}) does not fit model.vocab_size={vocab_size}")
    width = sum(self.levels)
    zeros = nnx.initializers.zeros
    self.inputs = make_param(zeros, rngs.params(), (width, d_model), (None, "embed"), param_dtype)
    self.outputs = make_param(zeros, rngs.params(), (d_model, width), ("embed", None), param_dtype)

  def _one_hot(self, dtype) -> jax.Array:
    return jnp.asarray(digit_one_hot(self.levels), dtype)

  def embedding(self, table: jax.Array) -> jax.Array:
    """[V, D] embedding table -> the same with every code row's digit vectors added."""
    rows = self._one_hot(table.dtype) @ self.inputs[...].astype(table.dtype)  # [N, D]
    rows = rows + jax.lax.dynamic_slice_in_dim(table, self.offset, self.num_codes)
    return jax.lax.dynamic_update_slice_in_dim(table, rows, self.offset, axis=0)

  def unembedding(self, kernel: jax.Array) -> jax.Array:
    """[D, V] output kernel -> the same with every code column's digit vectors added."""
    cols = self.outputs[...].astype(kernel.dtype) @ self._one_hot(kernel.dtype).T  # [D, N]
    cols = cols + jax.lax.dynamic_slice_in_dim(kernel, self.offset, self.num_codes, axis=1)
    return jax.lax.dynamic_update_slice_in_dim(kernel, cols, self.offset, axis=1)
