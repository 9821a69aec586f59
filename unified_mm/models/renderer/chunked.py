"""Chunked rendering: the latent as K horizontal stripes, rendered in order.

Stripe k is generated while stripes < k are CLEAN context (input x0, time 0)
and stripes > k are FUTURE (input pure noise, time 1); see dit.py for how the
per-token state enters the model. Token row r of a G-row grid belongs to
stripe floor(r K / G). Training draws K from `chunk_choices` and k uniformly
per example, so one model serves every K, K = 1 being whole-image rendering.

Sampling needs no bookkeeping: one latent array starts as noise, each stripe's
velocity is masked to that stripe, so earlier stripes stay at their finished
values and later ones at their starting noise until their turn.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from unified_mm.models.renderer import samplers
from unified_mm.models.renderer.dit import CLEAN, FUTURE, NOISY


def stripe_of_tokens(grid: int, chunks) -> jax.Array:
  """[T] (or [B, T] for chunks [B, 1]) stripe index of each row-major token."""
  rows = jnp.arange(grid * grid) // grid
  return (rows * chunks) // grid


def states(stripe: jax.Array, k) -> jax.Array:
  """Token states for rendering stripe k (k broadcastable against stripe)."""
  return jnp.where(stripe < k, CLEAN, jnp.where(stripe == k, NOISY, FUTURE)).astype(jnp.int32)


def training_states(rng: jax.Array, batch: int, grid: int, chunk_choices: Sequence[int]
                    ) -> jax.Array:
  """[B, T] states of a random K from chunk_choices and a random stripe k < K."""
  for k in chunk_choices:
    if not 1 <= k <= grid:
      raise ValueError(f"chunk_choices={tuple(chunk_choices)}: each K must be in [1, {grid}]")
  k_rng, s_rng = jax.random.split(rng)
  chunks = jax.random.choice(k_rng, jnp.asarray(chunk_choices, jnp.int32), (batch, 1))
  stripe = jax.random.randint(s_rng, (batch, 1), 0, chunks)  # [B, 1] in [0, K)
  return states(stripe_of_tokens(grid, chunks), stripe)


def token_to_latent(a: jax.Array, grid: int, patch: int) -> jax.Array:
  """[B, T] per-token values -> [B, grid * p, grid * p, 1] per latent position."""
  b = a.shape[0]
  a = a.reshape(b, grid, 1, grid, 1)
  a = jnp.broadcast_to(a, (b, grid, patch, grid, patch))
  return a.reshape(b, grid * patch, grid * patch, 1)


def render(model, noise: jax.Array, context: jax.Array, mask: jax.Array, *, chunks: int = 1,
           steps: int = 8, method: str = "euler", cfg_scale: float = 1.0,
           uncond_context: jax.Array | None = None, uncond_mask: jax.Array | None = None,
           shift: float = 1.0, start: float = 1.0) -> jax.Array:
  """Renders [B, Hh, Ww, C] latents stripe by stripe (chunks = K, static)."""
  b = noise.shape[0]
  grid, patch = model.token_grid, model.patch_size
  stripe = stripe_of_tokens(grid, chunks)  # [T]
  x = noise
  for k in range(chunks):
    state = jnp.broadcast_to(states(stripe, k), (b, grid * grid))
    update = token_to_latent((state == NOISY).astype(noise.dtype), grid, patch)
    field = samplers.guided_velocity(model, context, mask, scale=cfg_scale,
                                     uncond_context=uncond_context, uncond_mask=uncond_mask,
                                     token_state=state)
    x = samplers.sample(lambda x, t, field=field, update=update: field(x, t) * update, x,
                        steps=steps, method=method, shift=shift, start=start)
  return x
