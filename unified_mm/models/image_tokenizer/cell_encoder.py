"""The codes read from each code cell's own pixels and nothing else.

The shared encoder's receptive field reaches a cell's neighbours, so a cell of
plain background takes one of ~180 codes depending on what is near it, and a
transformer sampling those cells writes fragments of objects into empty
space. Here a cell's code is a function of its own p x p pixels only (no
spatial conv, no GroupNorm across the image): the same pixels always give the
same code. The preview decoder still sees every code around a cell.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from unified_mm.models.image_tokenizer.layers import (
    FEATURE_AXES, conv, layer_norm, space_to_depth)
from unified_mm.parallel.sharding import constrain


class CellEncoder(nnx.Module):
  """[B, H, W, 3] in [-1, 1] -> [B, H/p, W/p, out_features], each cell from its own pixels."""

  def __init__(self, *, patch: int, channels: Sequence[int], out_features: int, dtype,
               param_dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.patch = patch
    widths = (3 * patch * patch, *channels)
    self.layers = nnx.List([conv(a, b, 1, **kw) for a, b in zip(widths[:-1], widths[1:])])
    # LayerNorm over a cell's own channels: GroupNorm would mix in the whole image.
    self.norms = nnx.List([layer_norm(c, **kw) for c in channels])
    self.out = conv(widths[-1], out_features, 1, out_axis=None, **kw)

  def __call__(self, images: jax.Array) -> jax.Array:
    x = space_to_depth(images, self.patch)  # [B, H/p, W/p, 3 p^2]
    for layer, norm in zip(self.layers, self.norms):
      x = constrain(jax.nn.silu(norm(layer(x))), FEATURE_AXES)
    return self.out(x)
