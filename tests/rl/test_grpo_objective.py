"""The GRPO objective against a direct numpy computation, and on a toy policy
whose optimum is known."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from unified_mm.models.transformer.model import Transformer
from unified_mm.rl.grpo_loss import (flat_groups, group_advantages, grpo_loss, token_entropy,
                                     token_logprobs)


def test_group_advantages_standardise_within_each_group():
  r = np.array([1.0, 0.0, 0.0, 1.0, 2.0, 2.0, 2.0, 2.0, 0.5, 1.5, 2.5, 3.5])
  adv = group_advantages(r, 4)
  want = np.concatenate([(g - g.mean()) / (g.std() + 1e-6) for g in r.reshape(3, 4)])
  np.testing.assert_allclose(adv, want, rtol=1e-6)
  assert np.all(adv[4:8] == 0)  # a flat group carries no signal
  assert flat_groups(r, 4).mean() == pytest.approx(1 / 3)


def _numpy_loss(logp, old, ref, adv, mask, eps, beta):
  ratio = np.exp(logp - old)
  unclipped = ratio * adv[:, None]
  clipped = np.clip(ratio, 1 - eps, 1 + eps) * adv[:, None]
  surrogate = np.minimum(unclipped, clipped)
  kl = np.exp(ref - logp) - (ref - logp) - 1
  per_token = -(surrogate - beta * kl)
  per_answer = (per_token * mask).sum(1) / mask.sum(1)
  return per_answer.mean(), (kl * mask).sum() / mask.sum(), \
      ((np.abs(ratio - 1) > eps) * mask).sum() / mask.sum()


def _per_token(adv, mask):
  """Each answer's advantage on its tokens; weights 1 / (answers x its tokens)."""
  return adv[:, None] * mask, mask / (mask.sum(1, keepdims=True) * mask.shape[0])


def test_loss_ratio_clip_and_kl_equal_numpy():
  rng = np.random.default_rng(0)
  b, l = 6, 9
  logp = rng.normal(-2, 0.5, (b, l))
  old = logp + rng.normal(0, 0.3, (b, l))  # ratios well outside [0.8, 1.2] on some tokens
  ref = logp + rng.normal(0, 0.2, (b, l))
  adv = rng.normal(0, 1, b)
  mask = (rng.random((b, l)) < 0.7).astype(np.float32)
  mask[:, 0] = 1
  token_adv, weights = _per_token(adv, mask)
  loss, metrics = grpo_loss(*(jnp.asarray(x, jnp.float32)
                              for x in (logp, old, ref, token_adv, weights)),
                            clip_eps=0.2, kl_coef=0.04)
  want_loss, want_kl, want_clip = _numpy_loss(logp, old, ref, adv, mask, 0.2, 0.04)
  assert 0.05 < want_clip < 0.95  # the test exercises both sides of the clip
  np.testing.assert_allclose(float(loss), want_loss, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["kl"]), want_kl, rtol=1e-5)
  np.testing.assert_allclose(float(metrics["clip_fraction"]), want_clip, rtol=1e-6)


def test_gradient_is_zero_where_the_clip_binds():
  """A positive advantage with ratio above 1 + eps (or negative below 1 - eps) stops pushing."""
  old = jnp.zeros((2, 1))
  adv = jnp.array([1.0, -1.0])
  logp = jnp.log(jnp.array([[1.5], [0.5]]))  # ratios 1.5 and 0.5
  grad = jax.grad(lambda lp: grpo_loss(lp, old, lp, adv[:, None], jnp.full((2, 1), 0.5),
                                       clip_eps=0.2, kl_coef=0.0)[0])(logp)
  np.testing.assert_array_equal(np.asarray(grad), 0)


def test_logprobs_and_entropy_equal_numpy():
  rng = np.random.default_rng(1)
  logits = rng.normal(0, 2, (2, 3, 7)).astype(np.float32)
  targets = rng.integers(0, 7, (2, 3))
  p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  np.testing.assert_allclose(np.asarray(token_logprobs(jnp.asarray(logits), jnp.asarray(targets))),
                             np.log(np.take_along_axis(p, targets[..., None], -1)[..., 0]),
                             rtol=1e-5)
  np.testing.assert_allclose(np.asarray(token_entropy(jnp.asarray(logits))),
                             -(p * np.log(p)).sum(-1), rtol=1e-5)


def test_a_tiny_transformer_learns_to_emit_the_rewarded_token():
  """Prompt [1]; the policy writes one token of 16; reward 1 for token 5, else 0.
  The optimum puts all mass on 5; GRPO (with a KL to the start) gets most of it there."""
  vocab, group, prompts, target = 16, 8, 4, 5
  model = Transformer(vocab_size=vocab, d_model=16, num_layers=1, num_heads=2, num_kv_heads=1,
                      head_dim=8, mlp_dim=32, max_len=8, rngs=nnx.Rngs(0))
  graphdef, params = nnx.split(model, nnx.Param)
  ref_params = jax.tree.map(jnp.copy, params)
  tx = optax.adam(3e-2)
  opt = tx.init(params)
  tokens = jnp.ones((prompts * group, 1), jnp.int32)
  pos, seg = jnp.zeros_like(tokens), jnp.ones_like(tokens)

  def logits_of(p):
    return nnx.merge(graphdef, p)(tokens, pos, seg)  # [B, 1, V]

  def p_target(p):
    return float(jax.nn.softmax(logits_of(p)[0, 0])[target])

  @jax.jit
  def step(params, opt, key):
    answer = jax.random.categorical(key, logits_of(params)[:, 0])[:, None]
    reward = (answer[:, 0] == target).astype(jnp.float32).reshape(prompts, group)
    adv = ((reward - reward.mean(1, keepdims=True)) / (reward.std(1, keepdims=True) + 1e-6))
    old = jax.lax.stop_gradient(token_logprobs(logits_of(params), answer))
    ref = token_logprobs(logits_of(ref_params), answer)

    def loss(p):
      return grpo_loss(token_logprobs(logits_of(p), answer), old, ref, adv.reshape(-1, 1),
                       jnp.full_like(old, 1 / old.shape[0]), clip_eps=0.2, kl_coef=0.01)[0]
    grads = jax.grad(loss)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt

  start = p_target(params)
  for i in range(60):
    params, opt = step(params, opt, jax.random.key(i))
  assert start < 0.2
  assert p_target(params) > 0.9
