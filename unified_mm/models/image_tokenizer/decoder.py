"""A convolutional decoder: a coarse grid of features -> pixels.

Used twice: the latent decoder (z at H/4 -> pixels) and the light preview
decoder (FSQ codes at H/8 -> pixels). Each stage after the first doubles the
resolution by a conv at the low resolution followed by depth-to-space; the
head emits out_patch x out_patch pixels per position.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from unified_mm.models.image_tokenizer.layers import (
    FEATURE_AXES, ResBlock, conv, depth_to_space, group_norm)
from unified_mm.parallel.sharding import constrain


class Decoder(nnx.Module):
  """[B, h, w, in_features] -> [B, h * 2**(S-1) * out_patch, ..., 3] (S = len(channels))."""

  def __init__(self, *, in_features: int, channels: Sequence[int], num_res_blocks: int,
               out_patch: int, norm_groups: int, dtype, param_dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.out_patch = out_patch
    self.conv_in = conv(in_features, channels[0], 3, **kw)
    self.stages = nnx.List([
        nnx.List([ResBlock(c, norm_groups=norm_groups, **kw) for _ in range(num_res_blocks)])
        for c in channels])
    self.ups = nnx.List([conv(c_in, 4 * c_out, 3, **kw)
                         for c_in, c_out in zip(channels[:-1], channels[1:])])
    self.norm_out = group_norm(channels[-1], norm_groups, **kw)
    self.conv_out = conv(channels[-1], 3 * out_patch * out_patch, 3, **kw)

  def __call__(self, x: jax.Array) -> jax.Array:
    x = constrain(self.conv_in(x), FEATURE_AXES)  # [B, h, w, C0]
    for i, blocks in enumerate(self.stages):
      if i > 0:
        x = constrain(depth_to_space(self.ups[i - 1](x), 2), FEATURE_AXES)
      for block in blocks:
        x = block(x)
    x = self.conv_out(jax.nn.silu(self.norm_out(x)))  # [B, h', w', 3 * p * p]
    return depth_to_space(x, self.out_patch)  # [B, H, W, 3]
