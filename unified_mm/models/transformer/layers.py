"""Building blocks: logically-named parameters, RMSNorm, SwiGLU MLP, embedding.

Dimension letters: B batch, T sequence, D model, F feed-forward, V vocab.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

Initializer = Callable[[jax.Array, tuple[int, ...], jnp.dtype], jax.Array]


def make_param(init: Initializer, key: jax.Array, shape: Sequence[int],
               axes: Sequence[str | None], param_dtype) -> nnx.Param:
  """A parameter carrying logical axis names.

  Under a mesh (`sharding.activate`) the value is created already sharded;
  outside one Flax would refuse an annotated variable, so eager sharding is
  switched off there while the names stay in the metadata for the trainer.
  """
  mesh_active = not jax.sharding.get_abstract_mesh().empty
  value = init(key, tuple(shape), param_dtype)
  return nnx.Param(value, out_sharding=tuple(axes), eager_sharding=mesh_active)


def fan_in_init(fan_in: int, scale: float = 1.0) -> Initializer:
  """Truncated normal with std scale/sqrt(fan_in) (fan_in may span several axes)."""
  std = scale / fan_in ** 0.5
  def init(key, shape, dtype):
    # 0.8796 is the std of a standard normal truncated at +-2.
    return (jax.random.truncated_normal(key, -2.0, 2.0, shape, jnp.float32) * (std / 0.8796)
            ).astype(dtype)
  return init


def dense(x: jax.Array, kernel: jax.Array, in_dims: int = 1) -> jax.Array:
  """Contracts x's last `in_dims` axes with kernel's first `in_dims`, as one 2-D matmul.

  [B, T, *in] x [*in, *out] -> [B, T, *out]. The flattening matters: XLA:CPU
  computes the weight gradient of a 3-D einsum (contracting B and T) at half
  the speed of the same product written [B*T, in] x [in, out].
  """
  lead = x.shape[:x.ndim - in_dims]
  k_in, k_out = kernel.shape[:in_dims], kernel.shape[in_dims:]
  n_in, n_out = math.prod(k_in), math.prod(k_out)
  y = jnp.dot(x.reshape(-1, n_in), kernel.reshape(n_in, n_out))
  return y.reshape(*lead, *k_out)


def ones_init(key, shape, dtype):
  del key
  return jnp.ones(shape, dtype)


class RMSNorm(nnx.Module):
  """Root-mean-square norm over the last axis, computed in f32."""

  def __init__(self, dim: int, *, axes: Sequence[str | None] = ("embed",), eps: float = 1e-6,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.eps = eps
    self.dtype = dtype
    self.scale = make_param(ones_init, rngs.params(), (dim,), axes, param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return (y * self.scale[...].astype(jnp.float32)).astype(self.dtype)


class MLP(nnx.Module):
  """SwiGLU: wo(silu(x wi_gate) * (x wi_up))."""

  def __init__(self, d_model: int, mlp_dim: int, *, out_scale: float = 1.0,
               dtype=jnp.float32, param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.dtype = dtype
    self.wi_gate = make_param(fan_in_init(d_model), rngs.params(), (d_model, mlp_dim),
                              ("embed", "mlp"), param_dtype)
    self.wi_up = make_param(fan_in_init(d_model), rngs.params(), (d_model, mlp_dim),
                            ("embed", "mlp"), param_dtype)
    self.wo = make_param(fan_in_init(mlp_dim, out_scale), rngs.params(), (mlp_dim, d_model),
                         ("mlp", "embed"), param_dtype)

  def __call__(self, x: jax.Array) -> jax.Array:  # [B, T, D] -> [B, T, D]
    x = x.astype(self.dtype)
    gate = dense(x, self.wi_gate[...].astype(self.dtype))  # [B, T, F]
    up = dense(x, self.wi_up[...].astype(self.dtype))      # [B, T, F]
    h = jax.nn.silu(gate) * up
    return dense(h, self.wo[...].astype(self.dtype))       # [B, T, D]


class Embed(nnx.Module):
  """Token embedding table [V, D] (also the output kernel, transposed, when tied)."""

  def __init__(self, vocab_size: int, d_model: int, *, dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.dtype = dtype
    # std 1/sqrt(D): rows have unit norm, and tied logits start at unit scale.
    self.embedding = make_param(fan_in_init(d_model), rngs.params(), (vocab_size, d_model),
                                ("vocab", "embed"), param_dtype)

  def __call__(self, tokens: jax.Array) -> jax.Array:  # [B, T] -> [B, T, D]
    return jnp.take(self.embedding[...], tokens, axis=0).astype(self.dtype)
