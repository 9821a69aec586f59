"""The unified decoder-only transformer over one text + image-code vocabulary.

    logits = model(tokens, positions, segment_ids)                  # training
    hidden = model.hidden_states(tokens, positions, segment_ids)    # text embeddings
    logits, cache = model(tokens, positions, segment_ids, cache=c)  # KV-cache decoding

Packed rows: tokens attend only within their segment id and causally by row
index; positions restart per document and are an input. Segment 0 is padding.

Layer stack: `scan_layers=False` keeps the blocks as a list (`blocks.<i>.…`
params, a Python loop, the layout of every checkpoint so far); `True` holds
them as one stacked module (`layers.…` params [L, …] with a `layers` logical
axis) applied with `jax.lax.scan`, so compile time does not grow with depth.
Both compute the same function; `models/layer_stack.py` converts parameters
between the two. Remat (`remat`) wraps each block, inside the scan when scanned.
The KV cache follows the stack: a list of per-layer {k, v}, or one {k, v}
[L, B, K, S, H].
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from unified_mm.models.layer_stack import REMAT_POLICIES, check_remat, create_stack, scan_stack
from unified_mm.models.transformer.attention import CACHE_AXES, attention_mask
from unified_mm.models.transformer.attention_kernels import check_kernel, resolve_kernel
from unified_mm.models.transformer.block import ACTIVATION_AXES, Block
from unified_mm.models.transformer.code_digits import CodeDigits
from unified_mm.models.transformer.layers import Embed, RMSNorm, dense, fan_in_init, make_param
from unified_mm.models.transformer.rope import rope_tables
from unified_mm.parallel.sharding import constrain



def _block_forward(block: Block, x, sin, cos, mask, kernel, segment_ids):
  return block(x, sin, cos, mask, kernel=kernel, segment_ids=segment_ids)[0]


class Transformer(nnx.Module):

  def __init__(self, *, vocab_size: int, d_model: int, num_layers: int, num_heads: int,
               num_kv_heads: int, head_dim: int, mlp_dim: int, max_len: int = 2048,
               rope_theta: float = 10_000.0, qk_norm: bool = True,
               tie_embeddings: bool = False, norm_eps: float = 1e-6,
               dtype="float32", param_dtype="float32", remat: str = "none",
               scan_layers: bool = False, attention: str = "xla",
               code_levels: Sequence[int] = (), code_offset: int = 0, rngs: nnx.Rngs):
    check_remat(remat)
    dtype, param_dtype = jnp.dtype(dtype), jnp.dtype(param_dtype)
    check_kernel(attention, dtype=dtype, head_dim=head_dim)
    self.vocab_size, self.d_model, self.num_layers = vocab_size, d_model, num_layers
    self.num_kv_heads, self.head_dim = num_kv_heads, head_dim
    self.max_len, self.rope_theta, self.remat = max_len, rope_theta, remat
    self.scan_layers, self.attention = scan_layers, attention
    self.dtype = dtype
    kw = dict(dtype=dtype, param_dtype=param_dtype, rngs=rngs)
    self.embed = Embed(vocab_size, d_model, **kw)
    block_kw = dict(qk_norm=qk_norm, norm_eps=norm_eps, out_scale=(2 * num_layers) ** -0.5,
                    dtype=dtype, param_dtype=param_dtype)
    make_block = lambda r: Block(d_model, num_heads, num_kv_heads, head_dim, mlp_dim,
                                 **block_kw, rngs=r)
    if scan_layers:
      self.layers = create_stack(make_block, num_layers, rngs)
    else:
      self.blocks = nnx.List([make_block(rngs) for _ in range(num_layers)])
    self.final_norm = RMSNorm(d_model, eps=norm_eps, **kw)
    if tie_embeddings:
      self.unembed = None
    else:
      self.unembed = make_param(fan_in_init(d_model), rngs.params(), (d_model, vocab_size),
                                ("embed", "vocab"), param_dtype)
    # Image-code rows shared through their FSQ digits (code_digits.py); () keeps them free.
    self.code_digits = (CodeDigits(code_levels, code_offset, vocab_size, d_model,
                                   param_dtype=param_dtype, rngs=rngs) if code_levels else None)

  # -- cache ------------------------------------------------------------------

  def init_cache(self, batch_size: int, max_len: int | None = None, dtype=None) -> dict:
    """An empty KV cache: k, v [B, K, S, H] per layer (a list; stacked [L, B, K, S, H]
    when the layers are scanned); segment ids [B, S]; write index."""
    s = max_len or self.max_len
    shape = (batch_size, self.num_kv_heads, s, self.head_dim)
    dtype = dtype or self.dtype
    if self.scan_layers:
      stacked = (self.num_layers, *shape)
      layers = {name: constrain(jnp.zeros(stacked, dtype), ("layers", *CACHE_AXES))
                for name in ("k", "v")}
    else:
      layers = [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
                for _ in range(self.num_layers)]
    return {"index": jnp.zeros((), jnp.int32),
            "segment_ids": jnp.zeros((batch_size, s), jnp.int32), "layers": layers}

  # -- forward ----------------------------------------------------------------

  def _trunk(self, tokens, positions, segment_ids, cache):
    """Embedding, blocks and final norm -> hidden [B, T, D] (and the updated cache)."""
    b, t = tokens.shape
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    packed = segment_ids is not None
    if segment_ids is None:
      segment_ids = jnp.ones((b, t), jnp.int32)
    sin, cos = rope_tables(positions, self.head_dim, self.rope_theta)
    x = constrain(self._embed(tokens), ACTIVATION_AXES)
    q_index = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    if cache is None:
      kernel = resolve_kernel(self.attention, dtype=self.dtype, head_dim=self.head_dim,
                              seq_len=t, packed=packed)
      mask = attention_mask(segment_ids, segment_ids, q_index, q_index) if kernel == "xla" \
          else None
      x = self._blocks(x, sin, cos, mask, kernel, segment_ids)
      return self.final_norm(x), None
    index = cache["index"]
    kv_segments = jax.lax.dynamic_update_slice(
        cache["segment_ids"], segment_ids.astype(jnp.int32), (0, index))
    kv_index = jnp.broadcast_to(jnp.arange(kv_segments.shape[1], dtype=jnp.int32),
                                kv_segments.shape)
    mask = attention_mask(segment_ids, kv_segments, q_index + index, kv_index)
    x, layers = self._cached_blocks(x, sin, cos, mask, cache["layers"], index)
    new_cache = {"index": index + t, "segment_ids": kv_segments, "layers": layers}
    return self.final_norm(x), new_cache

  def _blocks(self, x, sin, cos, mask, kernel, segment_ids):
    """The block stack over a whole row, remat per block."""
    if self.scan_layers:
      step = lambda block, h, _: (_block_forward(block, h, sin, cos, mask, kernel,
                                                 segment_ids), None)
      return scan_stack(self.layers, step, x, remat=self.remat)[0]
    forward = _block_forward
    if REMAT_POLICIES[self.remat] is not None:
      forward = jax.checkpoint(_block_forward, policy=REMAT_POLICIES[self.remat],
                               static_argnums=(5,))
    for block in self.blocks:
      x = forward(block, x, sin, cos, mask, kernel, segment_ids)
    return x

  def _cached_blocks(self, x, sin, cos, mask, layers, index):
    """The block stack reading and writing the KV cache -> (x, new layer caches)."""
    if self.scan_layers:
      def step(block, h, layer_cache):
        h, layer_cache = block(h, sin, cos, mask, layer_cache, index)
        return h, layer_cache
      return scan_stack(self.layers, step, x, layers)
    new_layers = []
    for block, layer_cache in zip(self.blocks, layers):
      x, layer_cache = block(x, sin, cos, mask, layer_cache, index)
      new_layers.append(layer_cache)
    return x, new_layers

  def _embed(self, tokens: jax.Array) -> jax.Array:  # [B, T] -> [B, T, D]
    if self.code_digits is None:
      return self.embed(tokens)
    table = self.code_digits.embedding(self.embed.embedding[...])
    return jnp.take(table, tokens, axis=0).astype(self.dtype)

  def logits(self, hidden: jax.Array) -> jax.Array:  # [B, T, D] -> [B, T, V]
    kernel = self.embed.embedding[...].T if self.unembed is None else self.unembed[...]
    if self.code_digits is not None:
      kernel = self.code_digits.unembedding(kernel)
    return dense(hidden, kernel.astype(self.dtype))

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
