"""Attention and MLP layers shared by the DiT blocks and the context encoder.

Dimension letters: B batch, T query tokens, S key tokens, D model width,
N heads, H head dim, F MLP width.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

_MASKED = -1e30


def partitioned(init, *names):
  return nnx.with_partitioning(init, names)


class Attention(nnx.Module):
  """Multi-head attention with QK-norm; `context` None means self-attention.

  QK-norm keeps logits bounded when the context switches between the full
  conditioning and the lone null token (CFG dropout).
  """

  def __init__(self, embed_dim: int, num_heads: int, *, dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    if embed_dim % num_heads:
      raise ValueError(f"embed_dim={embed_dim} is not a multiple of num_heads={num_heads}")
    d, n, h = embed_dim, num_heads, embed_dim // num_heads
    init = nnx.initializers.lecun_normal()
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.q = nnx.Einsum("BTD,DNH->BTNH", (d, n, h),
                        kernel_init=partitioned(init, "embed", "heads", "head_dim"), **kw)
    self.k = nnx.Einsum("BSD,DNH->BSNH", (d, n, h),
                        kernel_init=partitioned(init, "embed", "heads", "head_dim"), **kw)
    self.v = nnx.Einsum("BSD,DNH->BSNH", (d, n, h),
                        kernel_init=partitioned(init, "embed", "heads", "head_dim"), **kw)
    self.o = nnx.Einsum("BTNH,NHD->BTD", (n, h, d), (d,),
                        kernel_init=partitioned(init, "heads", "head_dim", "embed"),
                        bias_init=partitioned(nnx.initializers.zeros, "embed"), **kw)
    norm_kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs,
                   scale_init=partitioned(nnx.initializers.ones, "head_dim"))
    self.q_norm = nnx.RMSNorm(h, **norm_kw)
    self.k_norm = nnx.RMSNorm(h, **norm_kw)

  def __call__(self, x: jax.Array, context: jax.Array | None = None,
               mask: jax.Array | None = None) -> jax.Array:
    """x [B, T, D], context [B, S, D], mask [B, S] (True = attend) -> [B, T, D]."""
    context = x if context is None else context
    q = self.q_norm(self.q(x))  # [B, T, N, H]
    k = self.k_norm(self.k(context))  # [B, S, N, H]
    v = self.v(context)  # [B, S, N, H]
    logits = jnp.einsum("BTNH,BSNH->BNTS", q, k).astype(jnp.float32)
    logits = logits / jnp.sqrt(q.shape[-1]).astype(jnp.float32)
    if mask is not None:
      logits = jnp.where(mask[:, None, None, :], logits, _MASKED)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = jnp.einsum("BNTS,BSNH->BTNH", probs, v)
    return self.o(out)


class Mlp(nnx.Module):
  def __init__(self, embed_dim: int, mlp_dim: int, *, dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    init = nnx.initializers.lecun_normal()
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.up = nnx.Linear(embed_dim, mlp_dim, kernel_init=partitioned(init, "embed", "mlp"),
                         bias_init=partitioned(nnx.initializers.zeros, "mlp"), **kw)
    self.down = nnx.Linear(mlp_dim, embed_dim, kernel_init=partitioned(init, "mlp", "embed"),
                           bias_init=partitioned(nnx.initializers.zeros, "embed"), **kw)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.down(jax.nn.gelu(self.up(x)))  # [B, T, D]


def layer_norm(dim: int, *, affine: bool, dtype, param_dtype, rngs: nnx.Rngs) -> nnx.LayerNorm:
  """LayerNorm; without affine params where adaLN supplies scale and shift."""
  return nnx.LayerNorm(
      dim, use_scale=affine, use_bias=affine, epsilon=1e-6, dtype=dtype,
      param_dtype=param_dtype, rngs=rngs,
      scale_init=partitioned(nnx.initializers.ones, "embed"),
      bias_init=partitioned(nnx.initializers.zeros, "embed"))
