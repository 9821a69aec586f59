"""One pre-norm decoder block: x + attn(norm(x)), then x + mlp(norm(x))."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.transformer.attention import Attention
from unified_mm.models.transformer.layers import MLP, RMSNorm
from unified_mm.parallel.sharding import constrain

ACTIVATION_AXES = ("batch", "length", "embed")


class Block(nnx.Module):

  def __init__(self, d_model: int, num_heads: int, num_kv_heads: int, head_dim: int,
               mlp_dim: int, *, qk_norm: bool = True, norm_eps: float = 1e-6,
               out_scale: float = 1.0, dtype=jnp.float32, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.attn_norm = RMSNorm(d_model, eps=norm_eps, **kw)
    self.attn = Attention(d_model, num_heads, num_kv_heads, head_dim, qk_norm=qk_norm,
                          out_scale=out_scale, **kw)
    self.mlp_norm = RMSNorm(d_model, eps=norm_eps, **kw)
    self.mlp = MLP(d_model, mlp_dim, out_scale=out_scale, **kw)

  def __call__(self, x: jax.Array, sin: jax.Array, cos: jax.Array, mask: jax.Array | None,
               cache: dict | None = None, cache_index: jax.Array | None = None, *,
               kernel: str = "xla", segment_ids: jax.Array | None = None
               ) -> tuple[jax.Array, dict | None]:  # x [B, T, D]
    h, cache = self.attn(self.attn_norm(x), sin, cos, mask, cache, cache_index,
                         kernel=kernel, segment_ids=segment_ids)
    x = x + h
    x = x + self.mlp(self.mlp_norm(x))
    return constrain(x, ACTIVATION_AXES), cache
