"""A patch critic for adversarial fine-tuning of the latent decoder.

Reconstruction losses alone leave a pixel whose side of an edge the latent
does not pin down as a blend of the two colours (the optimum of an averaged
loss); a critic that tells real patches from decoded ones pushes the decoder
to commit to one colour instead, as in VQGAN and the latent-diffusion
autoencoders. Each output logit judges one patch of 2**len(channels) pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from flax import nnx

from unified_mm.models.image_tokenizer.layers import (
    FEATURE_AXES, conv, group_norm, space_to_depth)
from unified_mm.parallel.sharding import constrain


class PatchCritic(nnx.Module):
  """[B, H, W, 3] in [-1, 1] -> logits [B, H / 2**S, W / 2**S] (S = len(channels))."""

  def __init__(self, *, channels: Sequence[int], norm_groups: int, dtype, param_dtype,
               rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.stem = conv(3, channels[0], 3, **kw)  # full resolution: blends are one pixel wide
    self.downs = nnx.List([conv(4 * c_in, c_out, 3, **kw) for c_in, c_out in
                           zip([channels[0], *channels[:-1]], channels)])
    self.norms = nnx.List([group_norm(c, norm_groups, **kw) for c in channels])
    self.head = conv(channels[-1], 1, 3, out_axis=None, **kw)

  def __call__(self, images: jax.Array) -> jax.Array:
    x = jax.nn.leaky_relu(self.stem(images), 0.2)
    for down, norm in zip(self.downs, self.norms):
      x = constrain(down(space_to_depth(x, 2)), FEATURE_AXES)
      x = jax.nn.leaky_relu(norm(x), 0.2)
    return self.head(x)[..., 0].astype(jax.numpy.float32)
