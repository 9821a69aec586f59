"""Grouped-query attention with QK-norm, RoPE, a segment-aware causal mask and a KV cache.

Dimension letters: B batch, T query length, S key length, D model,
N query heads, K kv heads, G = N / K query heads per kv head, H head dim.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from jax.ad_checkpoint import checkpoint_name

from unified_mm.models.layer_stack import ATTENTION_OUT, QKV_NAMES
from unified_mm.models.transformer.attention_kernels import cudnn_attention, splash_attention
from unified_mm.models.transformer.layers import RMSNorm, dense, fan_in_init, make_param
from unified_mm.models.transformer.rope import apply_rope
from unified_mm.parallel.sharding import constrain

# Heads ahead of length, the layout the decode step's matmuls read directly:
# a step then never copies the cache (a [B, S, K, H] cache was repeated for
# GQA and transposed every step, which bounded decoding by memory copies).
CACHE_AXES = ("batch", "kv_heads", "cache_length", "head_dim")


def attention_mask(q_segment_ids: jax.Array, kv_segment_ids: jax.Array,
                   q_index: jax.Array, kv_index: jax.Array) -> jax.Array:
  """[B, T, S] bool: same segment and key not after query (row-index causality).

  Causality uses the index inside the row (or cache), not the RoPE position,
  because positions restart at every packed document. Padding (segment 0)
  attends to padding only, so every row has at least its own diagonal.
  """
  same = q_segment_ids[:, :, None] == kv_segment_ids[:, None, :]
  causal = kv_index[:, None, :] <= q_index[:, :, None]
  return same & causal


# Queries are processed in chunks of this many rows, each against only the
# keys up to its own end: causality makes the skipped keys masked anyway, and
# on CPU the softmax (not the matmuls) dominates attention time, so a 512-long
# row does ~56% of the score work (measured: attention fwd+bwd 2x faster).
# Chunks of 32 did less score work but no better in the shapes transformer's
# step (docs/bench_train.md).
QUERY_CHUNK = 64


def _attend(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
  """q [B,K,G,T,H], k/v [B,K,S,H], mask [B,T,S] -> [B,K,G,T,H]; softmax in f32."""
  logits = jnp.einsum("BKGTH,BKSH->BKGTS", q, k).astype(jnp.float32)
  logits = jnp.where(mask[:, None, None], logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("BKGTS,BKSH->BKGTH", probs, v)


def dot_product_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array, *,
                          causal_chunks: bool = False) -> jax.Array:
  """q [B,T,N,H], k/v [B,S,K,H], mask [B,T,S] -> [B,T,N,H].

  Query head n reads kv head n // G (G = N/K): the query heads are grouped
  under their kv head ([B,K,G,T,H]) rather than the kv heads repeated G
  times, which spares the copies and their backward sums (the shapes
  transformer's step 7% faster on XLA:CPU, docs/bench_train.md). With
  `causal_chunks` (self-attention over a row, T == S, causal mask) query
  chunk i only reads keys [0, end_i).
  """
  b, t, n, h = q.shape
  kv_heads = k.shape[2]
  q = q * jnp.asarray(h ** -0.5, q.dtype)
  q = jnp.transpose(q.reshape(b, t, kv_heads, n // kv_heads, h), (0, 2, 3, 1, 4))  # [B,K,G,T,H]
  k, v = (jnp.transpose(a, (0, 2, 1, 3)) for a in (k, v))  # [B, K, S, H]
  if not causal_chunks or t <= QUERY_CHUNK or t % QUERY_CHUNK:
    out = _attend(q, k, v, mask)
  else:
    out = jnp.concatenate([
        _attend(q[:, :, :, s:s + QUERY_CHUNK], k[:, :, :s + QUERY_CHUNK],
                v[:, :, :s + QUERY_CHUNK], mask[:, s:s + QUERY_CHUNK, :s + QUERY_CHUNK])
        for s in range(0, t, QUERY_CHUNK)], axis=3)
  return jnp.transpose(out, (0, 3, 1, 2, 4)).reshape(b, t, n, h)  # [B, T, N, H]


def cached_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
  """q [B,T,N,H] against a heads-major cache k/v [B,K,S,H], mask [B,T,S] -> [B,T,N,H].

  Query head n reads kv head n // G (G = N/K), as in `dot_product_attention`,
  but grouped: the (large) cache is used in place, only the (short) query
  side is reshaped.
  """
  b, t, n, h = q.shape
  kv_heads = k.shape[1]
  q = q.reshape(b, t, kv_heads, n // kv_heads, h) * jnp.asarray(h ** -0.5, q.dtype)
  logits = jnp.einsum("BTKGH,BKSH->BKGTS", q, k).astype(jnp.float32)
  logits = jnp.where(mask[:, None, None, :, :], logits, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("BKGTS,BKSH->BTKGH", probs, v).reshape(b, t, n, h)


class Attention(nnx.Module):

  def __init__(self, d_model: int, num_heads: int, num_kv_heads: int, head_dim: int, *,
               qk_norm: bool = True, out_scale: float = 1.0, dtype=jnp.float32,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    if num_heads % num_kv_heads:
      raise ValueError(f"num_heads={num_heads} is not a multiple of num_kv_heads={num_kv_heads}")
    self.dtype = dtype
    init = fan_in_init(d_model)
    self.wq = make_param(init, rngs.params(), (d_model, num_heads, head_dim),
                         ("embed", "heads", "head_dim"), param_dtype)
    self.wk = make_param(init, rngs.params(), (d_model, num_kv_heads, head_dim),
                         ("embed", "kv_heads", "head_dim"), param_dtype)
    self.wv = make_param(init, rngs.params(), (d_model, num_kv_heads, head_dim),
                         ("embed", "kv_heads", "head_dim"), param_dtype)
    self.wo = make_param(fan_in_init(num_heads * head_dim, out_scale), rngs.params(),
                         (num_heads, head_dim, d_model), ("heads", "head_dim", "embed"),
                         param_dtype)
    if qk_norm:
      self.q_norm = RMSNorm(head_dim, axes=("head_dim",), dtype=dtype,
                            param_dtype=param_dtype, rngs=rngs)
      self.k_norm = RMSNorm(head_dim, axes=("head_dim",), dtype=dtype,
                            param_dtype=param_dtype, rngs=rngs)
    else:
      self.q_norm = self.k_norm = None

  def __call__(self, x: jax.Array, sin: jax.Array, cos: jax.Array, mask: jax.Array | None,
               cache: dict | None = None, cache_index: jax.Array | None = None, *,
               kernel: str = "xla", segment_ids: jax.Array | None = None
               ) -> tuple[jax.Array, dict | None]:
    """x [B,T,D] -> [B,T,D]. With `cache` ({k, v}: [B,K,S,H]) the new keys and
    values are written at `cache_index` and attention runs over the whole cache.

    `kernel` (see attention_kernels.py) picks the full-sequence path: 'xla'
    reads `mask` [B,T,S]; 'splash' reads `segment_ids` [B,T]; 'cudnn' is
    causal over the whole row.
    """
    x = x.astype(self.dtype)
    q = dense(x, self.wq[...].astype(self.dtype))  # [B, T, N, H]
    k = dense(x, self.wk[...].astype(self.dtype))  # [B, T, K, H]
    v = dense(x, self.wv[...].astype(self.dtype))  # [B, T, K, H]
    if self.q_norm is not None:
      q, k = self.q_norm(q), self.k_norm(k)
    q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
    q, k, v = (checkpoint_name(a, name) for a, name in zip((q, k, v), QKV_NAMES))
    if cache is None:
      if kernel == "splash":
        scaled = q * jnp.asarray(q.shape[-1] ** -0.5, q.dtype)
        out = splash_attention(scaled, k, v, segment_ids)
      elif kernel == "cudnn":
        out = cudnn_attention(q, k, v)
      else:
        out = dot_product_attention(q, k, v, mask, causal_chunks=True)  # [B, T, N, H]
      out = checkpoint_name(out, ATTENTION_OUT)
      return dense(out, self.wo[...].astype(self.dtype), in_dims=2), None  # [B, T, D]
    start = (0, 0, cache_index, 0)
    new_cache = {}
    for name, new in (("k", k), ("v", v)):
      new = jnp.transpose(new, (0, 2, 1, 3)).astype(cache[name].dtype)  # [B, K, T, H]
      new_cache[name] = constrain(jax.lax.dynamic_update_slice(cache[name], new, start),
                                  CACHE_AXES)
    out = cached_attention(q, new_cache["k"].astype(self.dtype),
                           new_cache["v"].astype(self.dtype), mask)  # [B, T, N, H]
    return dense(out, self.wo[...].astype(self.dtype), in_dims=2), new_cache
