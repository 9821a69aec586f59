"""The shared convolutional encoder: pixels -> a pyramid of feature maps.

Stage i runs at resolution H / (stem_patch * 2**i); the autoencoder reads the
continuous latent from one stage and the FSQ codes from a coarser one.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from unified_mm.models.image_tokenizer.layers import (
    FEATURE_AXES, ResBlock, conv, space_to_depth)
from unified_mm.parallel.sharding import constrain


class Encoder(nnx.Module):
  """[B, H, W, 3] in [-1, 1] -> list of [B, H/(p*2**i), W/(p*2**i), channels[i]]."""

  def __init__(self, *, channels: Sequence[int], num_res_blocks: int, stem_patch: int,
               norm_groups: int, dtype, param_dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.stem_patch = stem_patch
    self.stem = conv(3 * stem_patch * stem_patch, channels[0], 3, **kw)
    self.stages = nnx.List([
        nnx.List([ResBlock(c, norm_groups=norm_groups, **kw) for _ in range(num_res_blocks)])
        for c in channels])
    # Downsampling: space-to-depth by 2 then a 1x1 conv, computed at the low resolution.
    self.downs = nnx.List([conv(4 * c_in, c_out, 1, **kw)
                           for c_in, c_out in zip(channels[:-1], channels[1:])])

  def __call__(self, images: jax.Array, num_stages: int | None = None) -> list[jax.Array]:
    """Feature maps of the first `num_stages` stages (all by default)."""
    x = self.stem(space_to_depth(images, self.stem_patch))  # [B, H/p, W/p, C0]
    x = constrain(x, FEATURE_AXES)
    features = []
    for i, blocks in enumerate(list(self.stages)[:num_stages]):
      if i > 0:
        x = constrain(self.downs[i - 1](space_to_depth(x, 2)), FEATURE_AXES)
      for block in blocks:
        x = block(x)
      features.append(x)
    return features
