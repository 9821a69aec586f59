"""Convolutional building blocks of the tokenizer: convs with logical axes,
a pre-norm residual block, and lossless space<->depth reshapes.

Resampling is done with space-to-depth / depth-to-space plus a convolution at
the *low* resolution: on CPUs (and equally on TPUs) a 3x3 conv at full
resolution is the expensive part, and the reshape is free.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.parallel.sharding import constrain

CONV_AXES = ("kernel_h", "kernel_w", "conv_in", "conv_out")
FEATURE_AXES = ("batch", "height", "width", "channels")  # [B, Hh, Ww, C] activations


def conv(in_features: int, out_features: int, kernel: int, *, dtype, param_dtype,
         rngs: nnx.Rngs, zero_init: bool = False, out_axis: str | None = "conv_out") -> nnx.Conv:
  """A SAME-padded conv whose kernel [k, k, Cin, Cout] and bias [Cout] carry logical axes.

  `out_axis=None` keeps a few-channel output (a latent, RGB) unsharded.
  """
  init = nnx.initializers.zeros_init() if zero_init else nnx.initializers.lecun_normal()
  return nnx.Conv(
      in_features, out_features, (kernel, kernel), padding="SAME",
      kernel_init=nnx.with_partitioning(init, (*CONV_AXES[:3], out_axis)),
      bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), (out_axis,)),
      dtype=dtype, param_dtype=param_dtype, rngs=rngs)


_NORM_PARAMS = dict(
    scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("channels",)),
    bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("channels",)))


def group_norm(features: int, groups: int, *, dtype, param_dtype, rngs: nnx.Rngs) -> nnx.GroupNorm:
  return nnx.GroupNorm(features, num_groups=min(groups, features), **_NORM_PARAMS,
                       dtype=dtype, param_dtype=param_dtype, rngs=rngs)


def layer_norm(features: int, *, dtype, param_dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
  """Per position over its channels only (GroupNorm also pools over the image)."""
  return nnx.LayerNorm(features, **_NORM_PARAMS, dtype=dtype, param_dtype=param_dtype, rngs=rngs)


class ResBlock(nnx.Module):
  """x + conv(silu(norm(conv(silu(norm(x)))))); the last conv starts at zero so
  a fresh block is the identity and deep stacks train from step 0."""

  def __init__(self, features: int, *, norm_groups: int, dtype, param_dtype, rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.norm1 = group_norm(features, norm_groups, **kw)
    self.conv1 = conv(features, features, 3, **kw)
    self.norm2 = group_norm(features, norm_groups, **kw)
    self.conv2 = conv(features, features, 3, zero_init=True, **kw)

  def __call__(self, x: jax.Array) -> jax.Array:  # [B, Hh, Ww, C]
    h = self.conv1(jax.nn.silu(self.norm1(x)))
    h = self.conv2(jax.nn.silu(self.norm2(h)))
    return constrain(x + h, FEATURE_AXES)


def space_to_depth(x: jax.Array, p: int) -> jax.Array:
  """[B, H, W, C] -> [B, H/p, W/p, p*p*C]."""
  b, h, w, c = x.shape
  x = x.reshape(b, h // p, p, w // p, p, c)
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h // p, w // p, p * p * c)


def depth_to_space(x: jax.Array, p: int) -> jax.Array:
  """[B, Hh, Ww, p*p*C] -> [B, Hh*p, Ww*p, C]; the inverse of space_to_depth."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, p, p, c // (p * p))
  return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, h * p, w * p, c // (p * p))


def as_signed_unit(images: jax.Array, dtype=jnp.float32) -> jax.Array:
  """uint8 [0, 255] -> float [-1, 1]; float input is taken to be in [-1, 1] already."""
  if jnp.issubdtype(images.dtype, jnp.integer):
    return images.astype(dtype) / 127.5 - 1.0
  return images.astype(dtype)


def to_uint8(images: jax.Array) -> jax.Array:
  """float [-1, 1] -> uint8 [0, 255], rounded and clipped."""
  return jnp.clip(jnp.round((images + 1.0) * 127.5), 0, 255).astype(jnp.uint8)
