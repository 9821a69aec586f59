"""KV-cache decoding against full recompute; masks, top-k/top-p, image spans, CFG."""

import jax
import jax.numpy as jnp
import numpy as np
from transformer_factories import TINY

from unified_mm.models.transformer.sampling import (ImageSpanConstraint, filter_logits,
                                                    sample, sample_logits, vocab_range_mask)

V = TINY["vocab_size"]


def _prompt(seed, batch=2, length=8):
  return jax.random.randint(jax.random.key(seed), (batch, length), 0, V)


def test_greedy_kv_cache_matches_full_recompute(tiny_model):
  prompt, steps = _prompt(0), 64
  cached = np.asarray(sample(tiny_model, prompt, steps, jax.random.key(0), temperature=0.0))
  forward = jax.jit(lambda m, t: m(t))
  buf = jnp.zeros((2, prompt.shape[1] + steps), jnp.int32).at[:, :8].set(prompt)
  for i in range(steps):
    # Causality makes the zeros after position 8+i irrelevant: one compile for all steps.
    nxt = jnp.argmax(forward(tiny_model, buf)[:, 8 + i - 1], axis=-1)
    buf = buf.at[:, 8 + i].set(nxt)
  np.testing.assert_array_equal(cached, np.asarray(buf[:, 8:]))
  assert len(np.unique(cached)) > 3  # a non-trivial continuation


def test_left_padded_prompt_decodes_like_unpadded(tiny_model):
  prompt = _prompt(1, batch=1, length=5)
  padded = jnp.concatenate([jnp.zeros((1, 3), jnp.int32), prompt], axis=1)
  mask = jnp.arange(8)[None] >= 3
  a = sample(tiny_model, prompt, 10, jax.random.key(0), temperature=0.0)
  b = sample(tiny_model, padded, 10, jax.random.key(0), temperature=0.0, prompt_mask=mask)
  np.testing.assert_array_equal(a, b)


def test_masked_range_is_never_sampled(tiny_model):
  out = np.asarray(sample(tiny_model, _prompt(2, batch=4), 32, jax.random.key(1),
                          temperature=2.0, logit_mask_fn=vocab_range_mask(16, 112, False)))
  assert not ((out >= 16) & (out < 112)).any()
  assert len(np.unique(out)) > 4  # temperature 2 does spread over the allowed ids


def test_top_k_one_is_greedy(tiny_model):
  prompt = _prompt(3)
  greedy = sample(tiny_model, prompt, 16, jax.random.key(0), temperature=0.0)
  top1 = sample(tiny_model, prompt, 16, jax.random.key(5), temperature=1.5, top_k=1)
  np.testing.assert_array_equal(greedy, top1)


def test_top_k_and_top_p_sample_only_inside_their_sets():
  logits = jax.random.normal(jax.random.key(0), (3, 50)) * 3
  keys = jax.random.split(jax.random.key(1), 400)
  draw = jax.jit(jax.vmap(lambda k, top_k, top_p: sample_logits(k, logits, 1.0, top_k, top_p),
                          in_axes=(0, None, None)), static_argnums=(1, 2))
  topk = np.asarray(draw(keys, 5, 1.0))  # [400, 3]
  allowed = np.argsort(-np.asarray(logits), axis=-1)[:, :5]
  for row in range(3):
    assert set(topk[:, row]) <= set(allowed[row]) and len(set(topk[:, row])) > 1
  probs = np.asarray(jax.nn.softmax(logits, axis=-1))
  topp = np.asarray(draw(keys, 0, 0.6))
  for row in range(3):
    order = np.argsort(-probs[row])
    nucleus = order[: np.searchsorted(np.cumsum(probs[row][order]), 0.6) + 1]
    assert set(topp[:, row]) <= set(nucleus)
  kept = np.isfinite(np.asarray(filter_logits(logits, 0, 0.6)))
  assert (kept.sum(-1) >= 1).all()


def test_image_span_gets_exactly_grid_count_codes_then_eoi(tiny_model):
  boi, eoi, lo, hi, grid = 120, 121, 64, 120, 8
  c = ImageSpanConstraint(boi=boi, eoi=eoi, image_start=lo, image_stop=hi, grid_count=grid)
  prompt = _prompt(4, batch=3, length=6) % 64
  prompt = jnp.concatenate([prompt, jnp.full((3, 1), boi)], axis=1)
  out = np.asarray(sample(tiny_model, prompt, 14, jax.random.key(2), temperature=1.0,
                          constraint=c))
  assert ((out[:, :grid] >= lo) & (out[:, :grid] < hi)).all()
  assert (out[:, grid] == eoi).all()
  after = out[:, grid + 1:]
  assert not ((after >= lo) & (after < hi)).any() and not (after == eoi).any()


def test_classifier_free_guidance_mixes_logits(tiny_model):
  cond, uncond = _prompt(5), _prompt(6, length=3)
  key = jax.random.key(0)
  plain_cond = sample(tiny_model, cond, 12, key, temperature=0.0)
  plain_uncond = sample(tiny_model, uncond, 12, key, temperature=0.0)
  scale1 = sample(tiny_model, cond, 12, key, temperature=0.0, cfg_scale=1.0, uncond_tokens=uncond)
  scale0 = sample(tiny_model, cond, 12, key, temperature=0.0, cfg_scale=0.0, uncond_tokens=uncond)
  scale3 = sample(tiny_model, cond, 12, key, temperature=0.0, cfg_scale=3.0, uncond_tokens=uncond)
  np.testing.assert_array_equal(scale1, plain_cond)    # u + 1 (c - u) = c
  np.testing.assert_array_equal(scale0, plain_uncond)  # u, from a left-padded prompt
  assert not np.array_equal(scale3, plain_cond)


def test_stop_id_ends_decoding_once_every_row_has_written_it(tiny_model):
  prompt, steps, stop = _prompt(6, batch=4), 48, 3
  four_ids = vocab_range_mask(0, 4)  # every row soon writes `stop`, each at its own step
  kw = dict(temperature=1.5, logit_mask_fn=four_ids)
  full = np.asarray(sample(tiny_model, prompt, steps, jax.random.key(2), **kw))
  early = np.asarray(sample(tiny_model, prompt, steps, jax.random.key(2), stop_id=stop, **kw))
  first = [int(np.flatnonzero(r == stop)[0]) for r in full]
  assert len(set(first)) > 1 and max(first) < steps - 1
  for row, f in enumerate(first):
    np.testing.assert_array_equal(early[row, :f + 1], full[row, :f + 1])  # the same tokens
  assert not early[:, max(first) + 1:].any()  # nothing decoded after the last row stopped
  assert full[:, max(first) + 1:].any()
