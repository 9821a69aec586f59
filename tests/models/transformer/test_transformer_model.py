"""Shapes, causality, packing, RoPE, GQA, hidden states, remat, parameter axes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from transformer_factories import TINY, like
from flax import nnx

from unified_mm.models.transformer import Transformer
from unified_mm.models.transformer.attention import (attention_mask, cached_attention,
                                                     dot_product_attention)
from unified_mm.models.transformer.flops import forward_flops_per_sequence
from unified_mm.models.transformer.params import count_params, param_formula
from unified_mm.models.transformer.rope import apply_rope, rope_tables
from unified_mm.parallel.sharding import LOGICAL_AXES

forward = jax.jit(lambda m, t, p, s: m(t, p, s))


def _tokens(seed, shape):
  return jax.random.randint(jax.random.key(seed), shape, 0, TINY["vocab_size"])


def test_shapes_and_gqa(tiny_model):
  tokens = _tokens(0, (3, 10))
  logits, hidden = jax.jit(lambda m, t: m(t, return_hidden=True))(tiny_model, tokens)
  assert logits.shape == (3, 10, TINY["vocab_size"]) and hidden.shape == (3, 10, TINY["d_model"])
  attn = tiny_model.blocks[0].attn
  assert attn.wq.shape == (32, 4, 8)            # [D, N, H]
  assert attn.wk.shape == attn.wv.shape == (32, 2, 8)  # [D, K, H]: 2 kv heads for 4 q heads
  assert attn.wo.shape == (4, 8, 32)
  np.testing.assert_allclose(jax.jit(lambda m, t: m.hidden_states(t))(tiny_model, tokens),
                             hidden, atol=1e-6)


def test_causality(tiny_model):
  tokens = _tokens(1, (2, 16))
  changed = tokens.at[:, 9].set((tokens[:, 9] + 1) % TINY["vocab_size"])
  pos = jnp.broadcast_to(jnp.arange(16), (2, 16))
  seg = jnp.ones((2, 16), jnp.int32)
  a, b = forward(tiny_model, tokens, pos, seg), forward(tiny_model, changed, pos, seg)
  np.testing.assert_allclose(a[:, :9], b[:, :9], atol=1e-6)
  assert np.abs(np.asarray(a[:, 9:] - b[:, 9:])).max() > 1e-3


def test_packed_row_equals_separate_documents(tiny_model):
  doc1, doc2 = _tokens(2, (1, 7)), _tokens(3, (1, 9))
  row = jnp.concatenate([doc1, doc2], axis=1)
  pos = jnp.concatenate([jnp.arange(7), jnp.arange(9)])[None]
  seg = jnp.concatenate([jnp.full(7, 1), jnp.full(9, 2)])[None]
  packed = forward(tiny_model, row, pos, seg)
  alone = jax.jit(lambda m, t: m(t))
  alone1, alone2 = alone(tiny_model, doc1), alone(tiny_model, doc2)
  np.testing.assert_allclose(packed[:, :7], alone1, atol=1e-5)
  np.testing.assert_allclose(packed[:, 7:], alone2, atol=1e-5)


def test_attention_mask_blocks_other_segments():
  seg = jnp.asarray([[1, 1, 2, 2, 0]])
  idx = jnp.arange(5)[None]
  m = np.asarray(attention_mask(seg, seg, idx, idx)[0])
  expected = np.array([[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 1, 1, 0],
                       [0, 0, 0, 0, 1]], bool)
  np.testing.assert_array_equal(m, expected)


def test_rope_depends_only_on_relative_position():
  q = jax.random.normal(jax.random.key(0), (1, 1, 1, 16))
  k = jax.random.normal(jax.random.key(1), (1, 1, 1, 16))
  def score(pq, pk):
    sq, cq = rope_tables(jnp.array([[pq]]), 16, 10_000.0)
    sk, ck = rope_tables(jnp.array([[pk]]), 16, 10_000.0)
    return float(jnp.sum(apply_rope(q, sq, cq) * apply_rope(k, sk, ck)))
  assert score(5, 2) == pytest.approx(score(105, 102), abs=1e-4)
  assert score(5, 2) == pytest.approx(score(3, 0), abs=1e-4)
  assert abs(score(5, 2) - score(5, 4)) > 1e-3  # and it does depend on the offset
  s, c = rope_tables(jnp.array([[7]]), 16, 10_000.0)
  np.testing.assert_allclose(jnp.linalg.norm(apply_rope(q, s, c)), jnp.linalg.norm(q), rtol=1e-5)


def test_remat_gives_same_gradients(tiny_model):
  tokens = _tokens(4, (2, 12))
  loss = lambda m: jnp.mean(m(tokens) ** 2)
  plain = jax.jit(jax.grad(loss))(tiny_model)
  remat = jax.jit(jax.grad(loss))(like(tiny_model, remat="full"))
  for a, b in zip(jax.tree.leaves(nnx.state(plain, nnx.Param)),
                  jax.tree.leaves(nnx.state(remat, nnx.Param))):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_tied_embeddings_and_param_count():
  tied = dict(TINY, tie_embeddings=True)
  assert count_params(tied) == param_formula(**tied) == count_params(TINY) - 32 * 128
  assert count_params(TINY) == param_formula(**TINY)


def test_every_param_has_logical_axes(tiny_model):
  for path, var in nnx.to_flat_state(nnx.state(tiny_model, nnx.Param)):
    axes = var.get_metadata()["out_sharding"]
    assert len(axes) == var.shape.__len__(), path
    assert all(a in LOGICAL_AXES for a in axes), (path, axes)


def test_bf16_compute_keeps_f32_params(tiny_model):
  m = like(tiny_model, dtype="bfloat16")
  assert m.blocks[0].mlp.wi_gate[...].dtype == jnp.float32
  logits = jax.jit(lambda m, t: m(t))(m, _tokens(5, (1, 8)))
  assert logits.dtype == jnp.bfloat16 and bool(jnp.isfinite(logits.astype(jnp.float32)).all())


def test_chunked_causal_attention_is_exact():
  b, t, n, k, h = 2, 192, 4, 2, 8  # 3 query chunks of 64
  keys = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(keys[0], (b, t, n, h))
  kk, v = (jax.random.normal(x, (b, t, k, h)) for x in keys[1:])
  seg = jnp.asarray(np.repeat([[1, 2, 3]], b, 0).repeat([50, 100, 42], axis=1))
  idx = jnp.broadcast_to(jnp.arange(t), (b, t))
  mask = attention_mask(seg, seg, idx, idx)
  attend = jax.jit(dot_product_attention, static_argnames="causal_chunks")
  full = attend(q, kk, v, mask, causal_chunks=False)
  chunked = attend(q, kk, v, mask, causal_chunks=True)
  np.testing.assert_allclose(chunked, full, atol=1e-5)
  # The decode path: the same keys/values as a heads-major cache, grouped (no repeat).
  cached = jax.jit(cached_attention)(q, *(jnp.transpose(a, (0, 2, 1, 3)) for a in (kk, v)), mask)
  np.testing.assert_allclose(cached, full, atol=1e-5)


@pytest.mark.parametrize("seq_len", [32, 256])
def test_flop_count_matches_xla_cost_analysis(seq_len):
  """XLA counts every op (norms, softmax, ...); ours counts matmuls + attention:
  XLA's figure must be a few percent above ours, never below."""
  kw = dict(TINY, vocab_size=256, d_model=64, head_dim=16, mlp_dim=128)
  model = nnx.eval_shape(lambda: Transformer(**kw, rngs=nnx.Rngs(0)))
  tokens = jax.ShapeDtypeStruct((2, seq_len), jnp.int32)
  cost = jax.jit(lambda m, t: m(t)).lower(model, tokens).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  ratio = cost["flops"] / (2 * forward_flops_per_sequence(**kw, seq_len=seq_len))
  assert 1.0 <= ratio < 1.1, ratio
