"""Rectified flow: the renderer's training objective.

Convention (t = 0 is data, t = 1 is noise, as in SD3):

    x_t = (1 - t) x0 + t eps,        eps ~ N(0, I)
    v   = d x_t / d t = eps - x0      (the model's regression target)

Sampling integrates dx/dt = v from t = 1 (pure noise) down to t = 0 (samplers.py).
Training times come from `uniform` or `logit_normal` (sigmoid of a normal, SD3's
choice: it spends the steps on mid-range t, where the velocity is hardest to
predict). Chunked training (chunked.py) gives each latent token a state, so
times are per token: CLEAN tokens sit at t = 0, FUTURE ones at t = 1, and only
NOISY tokens carry the loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from unified_mm.models.renderer import chunked
from unified_mm.models.renderer.dit import NOISY

TIME_DISTRIBUTIONS = ("uniform", "logit_normal")


def sample_time(rng: jax.Array, batch: int, *, distribution: str = "logit_normal",
                mean: float = 0.0, std: float = 1.0) -> jax.Array:
  """[B] training times in (0, 1)."""
  if distribution == "uniform":
    return jax.random.uniform(rng, (batch,), minval=1e-5, maxval=1.0)
  if distribution == "logit_normal":
    return jax.nn.sigmoid(mean + std * jax.random.normal(rng, (batch,)))
  raise ValueError(f"time distribution {distribution!r}; expected one of {TIME_DISTRIBUTIONS}")


def interpolate(x0: jax.Array, noise: jax.Array, t: jax.Array) -> jax.Array:
  """x_t for t broadcastable against x0 ([B, 1, 1, 1] or per-position)."""
  return (1.0 - t) * x0 + t * noise


def velocity_target(x0: jax.Array, noise: jax.Array) -> jax.Array:
  return noise - x0


def token_times(token_state: jax.Array, t: jax.Array) -> jax.Array:
  """[B, T] per-token times: 0 for CLEAN, t for NOISY, 1 for FUTURE."""
  return jnp.where(token_state == NOISY, t[:, None], (token_state > NOISY).astype(t.dtype))


def training_loss(model, x0: jax.Array, rng: jax.Array, *,
                  context_inputs: Mapping[str, jax.Array], drop_prob: float = 0.1,
                  time_distribution: str = "logit_normal", time_mean: float = 0.0,
                  time_std: float = 1.0, chunk_choices: Sequence[int] = (1,)
                  ) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Velocity MSE over the NOISY tokens of a random stripe layout.

  x0 [B, Hh, Ww, C] normalised latents; context_inputs go to the context
  encoder (codes / text_ids / text_mask / text_states); the context is dropped
  (null token only) with probability `drop_prob` for classifier-free guidance.
  """
  b = x0.shape[0]
  t_rng, noise_rng, drop_rng, chunk_rng = jax.random.split(rng, 4)
  t = sample_time(t_rng, b, distribution=time_distribution, mean=time_mean, std=time_std)
  noise = jax.random.normal(noise_rng, x0.shape, x0.dtype)
  grid, patch = model.token_grid, model.patch_size
  state = chunked.training_states(chunk_rng, b, grid, chunk_choices)  # [B, T]
  t_lat = chunked.token_to_latent(token_times(state, t), grid, patch)  # [B, Hh, Ww, 1]
  x_t = interpolate(x0, noise, t_lat.astype(x0.dtype))
  keep = jax.random.uniform(drop_rng, (b,)) >= drop_prob
  v = model(x_t, t, token_state=state, keep=keep, **context_inputs)
  weight = chunked.token_to_latent((state == NOISY).astype(jnp.float32), grid, patch)
  err = jnp.square(v.astype(jnp.float32) - velocity_target(x0, noise).astype(jnp.float32))
  loss = (err * weight).sum() / (weight.sum() * x0.shape[-1])
  whole = (state == NOISY).all(axis=1).astype(jnp.float32)  # examples rendered at K=1
  return loss, {"loss": loss, "whole_image_share": whole.mean()}
