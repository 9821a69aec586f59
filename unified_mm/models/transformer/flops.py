"""Exact training FLOPs of the transformer: every matmul, attention included.

Counted as executed: attention scores and the weighted sum run, per query
chunk of `QUERY_CHUNK` rows, over the keys up to the chunk's end (masked
entries inside that range are computed, then discarded, and count); without
chunking (T not a multiple of the chunk) over the full [T, T] square. This is
what the hardware does, so MFU is not inflated by work that is skipped.
The embedding gather is not a matmul and does not count; norms, softmax and
elementwise work are excluded (as in MFU conventions). Backward
costs two forward matmuls (gradient w.r.t. input and w.r.t. weight): 3x.
"""

from __future__ import annotations

from unified_mm.models.transformer.attention import QUERY_CHUNK


def attention_pairs(seq_len: int) -> int:
  """(query, key) pairs whose scores the training forward pass computes."""
  c = QUERY_CHUNK
  if seq_len <= c or seq_len % c:
    return seq_len * seq_len
  chunks = seq_len // c
  return c * c * chunks * (chunks + 1) // 2


def forward_flops_per_sequence(*, vocab_size: int, d_model: int, num_layers: int,
                               num_heads: int, num_kv_heads: int, head_dim: int,
                               mlp_dim: int, seq_len: int, **unused) -> int:
  del unused
  t = seq_len
  projections = 2 * t * d_model * head_dim * (2 * num_heads + 2 * num_kv_heads)  # q, k, v, o
  mlp = 2 * t * 3 * d_model * mlp_dim                                           # gate, up, down
  attention = 2 * 2 * attention_pairs(t) * num_heads * head_dim                 # QK^T and PV
  unembed = 2 * t * d_model * vocab_size
  return num_layers * (projections + mlp + attention) + unembed


def train_flops_per_step(model_kwargs, *, seq_len: int, batch_size: int) -> int:
  """Forward + backward FLOPs of one optimiser step over `batch_size` rows."""
  return 3 * batch_size * forward_flops_per_sequence(**dict(model_kwargs), seq_len=seq_len)
