"""The unified decoder-only transformer over one text + image-code vocabulary.

    logits = model(tokens, positions, segment_ids)                  # training
    hidden = model.hidden_states(tokens, positions, segment_ids)    # text embeddings
    logits, cache = model(tokens, positions, segment_ids, cache=c)  # KV-cache decoding

Packed rows: tokens attend only within their segment id and causally by row
index; positions restart per document and are an input. Segment 0 is padding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.transformer.attention import attention_mask
from unified_mm.models.transformer.block import ACTIVATION_AXES, Block
from unified_mm.models.transformer.layers import Embed, RMSNorm, dense, fan_in_init, make_param
from unified_mm.models.transformer.rope import rope_tables
from unified_mm.parallel.sharding import constrain

REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def _block_forward(block: Block, x, sin, cos, mask):
  return block(x, sin, cos, mask)[0]


class Transformer(nnx.Module):

  def __init__(self, *, vocab_size: int, d_model: int, num_layers: int, num_heads: int,
               num_kv_heads: int, head_dim: int, mlp_dim: int, max_len: int = 2048,
               rope_theta: float = 10_000.0, qk_norm: bool = True,
               tie_embeddings: bool = False, norm_eps: float = 1e-6,
               dtype="float32", param_dtype="float32", remat: str = "none",
               rngs: nnx.Rngs):
    if remat not in REMAT_POLICIES:
      raise ValueError(f"remat={remat!r}: expected one of {sorted(REMAT_POLICIES)}")
    dtype, param_dtype = jnp.dtype(dtype), jnp.dtype(param_dtype)
    self.vocab_size, self.d_model, self.num_layers = vocab_size, d_model, num_layers
    self.num_kv_heads, self.head_dim = num_kv_heads, head_dim
    self.max_len, self.rope_theta, self.remat = max_len, rope_theta, remat
    self.dtype = dtype
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.embed = Embed(vocab_size, d_model, **kw)
    self.blocks = nnx.List([
        Block(d_model, num_heads, num_kv_heads, head_dim, mlp_dim, qk_norm=qk_norm,
              norm_eps=norm_eps, out_scale=(2 * num_layers) ** -0.5, **kw)
        for _ in range(num_layers)])
    self.final_norm = RMSNorm(d_model, eps=norm_eps, **kw)
    if tie_embeddings:
      self.unembed = None
    else:
      self.unembed = make_param(fan_in_init(d_model), rngs.params(), (d_model, vocab_size),
                                ("embed", "vocab"), param_dtype)

  # -- cache ------------------------------------------------------------------

  def init_cache(self, batch_size: int, max_len: int | None = None, dtype=None) -> dict:
    """An empty KV cache: per layer k, v [B, K, S, H]; segment ids [B, S]; write index."""
    s = max_len or self.max_len
    shape = (batch_size, self.num_kv_heads, s, self.head_dim)
    dtype = dtype or self.dtype
    return {
        "index": jnp.zeros((), jnp.int32),
        "segment_ids": jnp.zeros((batch_size, s), jnp.int32),
        "layers": [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
                   for _ in range(self.num_layers)],
    }

  # -- forward ----------------------------------------------------------------

  def _trunk(self, tokens, positions, segment_ids, cache):
    """Embedding, blocks and final norm -> hidden [B, T, D] (and the updated cache)."""
    b, t = tokens.shape
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    if segment_ids is None:
      segment_ids = jnp.ones((b, t), jnp.int32)
    sin, cos = rope_tables(positions, self.head_dim, self.rope_theta)
    x = constrain(self.embed(tokens), ACTIVATION_AXES)
    q_index = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    if cache is None:
      mask = attention_mask(segment_ids, segment_ids, q_index, q_index)
      forward = _block_forward
      if REMAT_POLICIES[self.remat] is not None:
        forward = jax.checkpoint(_block_forward, policy=REMAT_POLICIES[self.remat])
      for block in self.blocks:
        x = forward(block, x, sin, cos, mask)
      return self.final_norm(x), None
    index = cache["index"]
    kv_segments = jax.lax.dynamic_update_slice(
        cache["segment_ids"], segment_ids.astype(jnp.int32), (0, index))
    kv_index = jnp.broadcast_to(jnp.arange(kv_segments.shape[1], dtype=jnp.int32),
                                kv_segments.shape)
    mask = attention_mask(segment_ids, kv_segments, q_index + index, kv_index)
    layers = []
    for block, layer_cache in zip(self.blocks, cache["layers"]):
      x, layer_cache = block(x, sin, cos, mask, layer_cache, index)
      layers.append(layer_cache)
    new_cache = {"index": index + t, "segment_ids": kv_segments, "layers": layers}
    return self.final_norm(x), new_cache

  def logits(self, hidden: jax.Array) -> jax.Array:  # [B, T, D] -> [B, T, V]
    if self.unembed is None:
      return self.embed.attend(hidden)
    return dense(hidden, self.unembed[...].astype(self.dtype))

  def hidden_states(self, tokens: jax.Array, positions: jax.Array | None = None,
                    segment_ids: jax.Array | None = None) -> jax.Array:
    """Final-norm hidden states [B, T, D] (e.g. text embeddings for the renderer)."""
    return self._trunk(tokens, positions, segment_ids, None)[0]

  def __call__(self, tokens: jax.Array, positions: jax.Array | None = None,
               segment_ids: jax.Array | None = None, *, cache: dict | None = None,
               return_hidden: bool = False):
    """tokens/positions/segment_ids [B, T] -> logits [B, T, V].

    With `cache` returns (logits, new_cache); with `return_hidden` (no cache)
    returns (logits, hidden).
    """
    hidden, new_cache = self._trunk(tokens, positions, segment_ids, cache)
    logits = self.logits(hidden)
    if cache is not None:
      return logits, new_cache
    if return_hidden:
      return logits, hidden
    return logits
