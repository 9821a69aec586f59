"""Few-step ODE samplers for the rectified flow, and classifier-free guidance.

A velocity function maps (x [B, ...], t scalar) to dx/dt; samplers integrate
it from t = 1 (x = noise) to t = 0 (flow.py's convention) on the grid

    t_i = shift(1 - i / N),   shift(u) = s u / (1 + (s - 1) u)

(s = 1: uniform steps; s > 1 spends more steps near the noise end, SD3-style),
scaled by `start` (< 1: refine a partly noised initial latent instead of
starting from pure noise, SDEdit-style; see rendering.py).
Euler uses N evaluations; Heun (trapezoidal corrector) uses 2N - 1, its last
step being plain Euler because the corrector would evaluate at t = 0.

Guidance: v = v_uncond + s (v_cond - v_uncond), the unconditional branch
seeing only the context's null token. At s = 1 the unconditional branch is
skipped altogether (it would cancel out).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

VelocityFn = Callable[[jax.Array, jax.Array], jax.Array]
METHODS = ("euler", "heun")


def time_grid(steps: int, shift: float = 1.0, start: float = 1.0) -> jax.Array:
  """[steps + 1] times from `start` down to 0."""
  u = 1.0 - jnp.arange(steps + 1, dtype=jnp.float32) / steps
  return start * shift * u / (1.0 + (shift - 1.0) * u)


def euler(velocity_fn: VelocityFn, x: jax.Array, steps: int, shift: float = 1.0,
          start: float = 1.0) -> jax.Array:
  ts = time_grid(steps, shift, start)

  def step(i, x):
    t, t_next = ts[i], ts[i + 1]
    return x + (t_next - t) * velocity_fn(x, t)

  return jax.lax.fori_loop(0, steps, step, x)


def heun(velocity_fn: VelocityFn, x: jax.Array, steps: int, shift: float = 1.0,
         start: float = 1.0) -> jax.Array:
  ts = time_grid(steps, shift, start)

  def step(i, x):
    t, t_next = ts[i], ts[i + 1]
    v = velocity_fn(x, t)
    x_pred = x + (t_next - t) * v
    return x + (t_next - t) * 0.5 * (v + velocity_fn(x_pred, t_next))

  x = jax.lax.fori_loop(0, steps - 1, step, x)
  return x + (ts[steps] - ts[steps - 1]) * velocity_fn(x, ts[steps - 1])


def sample(velocity_fn: VelocityFn, noise: jax.Array, *, steps: int, method: str = "euler",
           shift: float = 1.0, start: float = 1.0) -> jax.Array:
  """Integrates from x at t = start (pure noise when start = 1) to a sample (t = 0)."""
  if steps < 1:
    raise ValueError(f"steps={steps}: need at least one step")
  if method == "euler":
    return euler(velocity_fn, noise, steps, shift, start)
  if method == "heun":
    return heun(velocity_fn, noise, steps, shift, start)
  raise ValueError(f"sampler {method!r}; expected one of {METHODS}")


def cfg_combine(v_cond: jax.Array, v_uncond: jax.Array, scale: float) -> jax.Array:
  return v_uncond + scale * (v_cond - v_uncond)


def guided_velocity(model, context: jax.Array, mask: jax.Array, *, scale: float = 1.0,
                    uncond_context: jax.Array | None = None,
                    uncond_mask: jax.Array | None = None,
                    token_state: jax.Array | None = None) -> VelocityFn:
  """The renderer's velocity at guidance `scale` (a Python float).

  Both branches run as one batch of 2B so each step is one model call.
  """
  b = context.shape[0]

  def cond_only(x, t):
    return model.velocity(x, jnp.full((b,), t), context, mask, token_state)

  if scale == 1.0:
    return cond_only
  ctx2 = jnp.concatenate([context, uncond_context], axis=0)
  mask2 = jnp.concatenate([mask, uncond_mask], axis=0)
  state2 = None if token_state is None else jnp.concatenate([token_state, token_state], axis=0)

  def guided(x, t):
    v = model.velocity(jnp.concatenate([x, x], axis=0), jnp.full((2 * b,), t), ctx2, mask2, state2)
    return cfg_combine(v[:b], v[b:], scale)

  return guided
