"""The GRPO objective (DeepSeekMath, Shao et al. 2024), token level.

For each prompt a group of G answers is sampled; an answer's advantage is its
reward standardised within its group, so no value model is needed. The loss of
an answer token t with log-probability logp under the policy being trained,
old_logp under the policy that sampled it, ref_logp under the frozen reference:

    ratio     = exp(logp - old_logp)
    surrogate = min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A)
    kl        = exp(ref_logp - logp) - (ref_logp - logp) - 1     (k3: >= 0, unbiased)
    loss_t    = -(surrogate - beta * kl)

averaged over each answer's tokens, then over answers (answers may share a row:
packed, each a segment of its own).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def group_advantages(rewards: np.ndarray, group_size: int, eps: float = 1e-6) -> np.ndarray:
  """(r - mean of its group) / (std of its group + eps); rows are grouped consecutively.
  A group whose rewards are all equal gets advantage 0: it carries no signal."""
  r = np.asarray(rewards, np.float64).reshape(-1, group_size)
  adv = (r - r.mean(axis=1, keepdims=True)) / (r.std(axis=1, keepdims=True) + eps)
  return adv.reshape(-1).astype(np.float32)


def flat_groups(rewards: np.ndarray, group_size: int) -> np.ndarray:
  """Per group: are its rewards all equal (no learning signal)? bool [B / G]."""
  r = np.asarray(rewards).reshape(-1, group_size)
  return np.all(r == r[:, :1], axis=1)


def token_logprobs(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """log p(target) per position: logits [B, L, V], targets [B, L] -> f32 [B, L]."""
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]


def token_entropy(logits: jax.Array) -> jax.Array:
  logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.sum(jnp.exp(logp) * logp, axis=-1)


def grpo_loss(logp, old_logp, ref_logp, advantages, weights, *, clip_eps: float, kl_coef: float):
  """Scalar loss and {kl, clip_fraction, ratio}; every input [rows, L] per token
  (`ref_logp` unread when `kl_coef` is 0).

  `advantages` holds each token's answer's advantage and `weights` 1 / (answers x
  that answer's tokens) on answer tokens, 0 elsewhere (rollout.answer_rows), so the
  loss is the mean over answers of their mean token loss, packed rows or not."""
  mask = (weights > 0).astype(jnp.float32)
  ratio = jnp.exp(logp - old_logp)
  surrogate = jnp.minimum(ratio * advantages,
                          jnp.clip(ratio, 1 - clip_eps, 1 + clip_eps) * advantages)
  if kl_coef:
    delta = ref_logp - logp
    kl = jnp.exp(delta) - delta - 1
  else:  # no KL term: `ref_logp` is not read (the stage then runs no reference)
    kl = jnp.zeros_like(logp)
  per_token = -(surrogate - kl_coef * kl)
  loss = jnp.sum(per_token * weights)
  total = jnp.maximum(mask.sum(), 1.0)
  clipped = (jnp.abs(ratio - 1) > clip_eps).astype(jnp.float32)
  return loss, {"kl": (kl * mask).sum() / total,
                "clip_fraction": (clipped * mask).sum() / total,
                "ratio": (ratio * mask).sum() / total}
