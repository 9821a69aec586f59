"""Samplers against an exact velocity field, CFG identities, chunked K=1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from renderer_factories import context_inputs, tiny_renderer
from unified_mm.models.renderer import Renderer, chunked, flow, samplers

MU, SIGMA = 2.0, 0.5
render = nnx.jit(chunked.render, static_argnames=("chunks", "steps", "method"))


def gaussian_velocity(x, t):
  """Exact rectified-flow velocity when x0 ~ N(MU, SIGMA^2), eps ~ N(0, 1).

  x_t = (1-t) x0 + t eps is N(m_t, s_t^2) with m_t = (1-t) MU and
  s_t^2 = (1-t)^2 SIGMA^2 + t^2; the flow maps quantiles to quantiles, so
  v = m_t' + (s_t'/s_t)(x - m_t).
  """
  m = (1 - t) * MU
  s2 = (1 - t) ** 2 * SIGMA**2 + t**2
  ds2 = -2 * (1 - t) * SIGMA**2 + 2 * t
  return -MU + 0.5 * ds2 / s2 * (x - m)


def test_gaussian_velocity_is_the_flow_target():
  # The field above must be E[eps - x0 | x_t]: check by Monte Carlo regression.
  rng = np.random.default_rng(0)
  x0 = rng.normal(MU, SIGMA, 400_000)
  eps = rng.normal(0, 1, 400_000)
  t = 0.4
  xt = (1 - t) * x0 + t * eps
  bins = np.digitize(xt, np.linspace(0.6, 1.8, 7))
  for b in range(1, 7):
    sel = bins == b
    assert np.mean((eps - x0)[sel]) == pytest.approx(
        float(np.mean(gaussian_velocity(xt[sel], t))), abs=0.02)


@pytest.mark.parametrize("method,steps,shift", [("euler", 200, 1.0), ("heun", 12, 1.0),
                                                ("heun", 40, 3.0)])
def test_samplers_reach_the_gaussian_target(method, steps, shift):
  noise = jax.random.normal(jax.random.key(0), (200_000,))
  x = samplers.sample(gaussian_velocity, noise, steps=steps, method=method, shift=shift)
  assert float(x.mean()) == pytest.approx(MU, abs=0.02)
  assert float(x.std()) == pytest.approx(SIGMA, rel=0.02)


def test_heun_beats_euler_at_equal_steps():
  noise = jax.random.normal(jax.random.key(1), (50_000,))
  exact = MU + SIGMA * noise  # the flow maps quantiles to quantiles
  err = {m: float(jnp.abs(samplers.sample(gaussian_velocity, noise, steps=6, method=m) - exact).max())
         for m in samplers.METHODS}
  assert err["heun"] < err["euler"] / 3


def test_time_grid_runs_from_noise_to_data():
  for shift in (1.0, 3.0):
    ts = np.asarray(samplers.time_grid(5, shift))
    assert ts[0] == pytest.approx(1.0) and ts[-1] == pytest.approx(0.0)
    assert np.all(np.diff(ts) < 0)
  ts = np.asarray(samplers.time_grid(4, 1.0, start=0.5))
  np.testing.assert_allclose(ts, [0.5, 0.375, 0.25, 0.125, 0.0], atol=1e-7)


def test_partial_start_follows_the_flow_from_an_intermediate_time():
  # Starting at t=0.5 from x_0.5 of the exact Gaussian flow reaches the same target.
  noise = jax.random.normal(jax.random.key(2), (100_000,))
  x_half = 0.5 * (MU + SIGMA * noise) + 0.5 * jax.random.normal(jax.random.key(3), (100_000,))
  x = samplers.sample(gaussian_velocity, x_half, steps=20, method="heun", start=0.5)
  assert float(x.mean()) == pytest.approx(MU, abs=0.02)
  assert float(x.std()) == pytest.approx(SIGMA, rel=0.03)


@nnx.jit
def _guidance_outputs(model, inputs, x, t):
  ctx, mask = model.encode_context(**inputs)
  uctx, umask = model.encode_context(keep=jnp.zeros((x.shape[0],), bool), **inputs)
  b = jnp.full((x.shape[0],), t)
  branches = model.velocity(x, b, ctx, mask), model.velocity(x, b, uctx, umask)
  guided = {s: samplers.guided_velocity(model, ctx, mask, scale=s, uncond_context=uctx,
                                        uncond_mask=umask)(x, t) for s in (0.0, 1.0, 3.0)}
  return branches, guided


def test_cfg_scale_one_is_the_conditional_prediction():
  model = tiny_renderer()
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
  (v_cond, v_uncond), guided = _guidance_outputs(model, context_inputs(), x, jnp.float32(0.6))
  assert float(jnp.abs(v_cond - v_uncond).max()) > 1e-3  # the context matters
  np.testing.assert_allclose(guided[1.0], v_cond, atol=1e-6)
  np.testing.assert_allclose(samplers.cfg_combine(v_cond, v_uncond, 1.0), v_cond, atol=1e-6)
  # The batched two-branch path gives the branches themselves and their extrapolation.
  np.testing.assert_allclose(guided[0.0], v_uncond, atol=1e-5)
  np.testing.assert_allclose(guided[3.0], v_uncond + 3.0 * (v_cond - v_uncond), atol=1e-4)


def test_unconditional_context_ignores_the_conditioning():
  model = tiny_renderer()
  a, b = context_inputs(), context_inputs()
  b["codes"] = (b["codes"] + 1) % 50
  keep = jnp.zeros((3,), bool)
  encode = nnx.jit(lambda m, inputs: m.encode_context(keep=keep, **inputs))
  ca, ma = encode(model, a)
  cb, mb = encode(model, b)
  np.testing.assert_allclose(ca[:, 0], cb[:, 0], atol=1e-6)  # the null token, the only one kept
  assert not bool(ma[:, 1:].any())


def test_one_chunk_equals_whole_image(method="heun"):
  model = tiny_renderer()
  ctx, mask = nnx.jit(lambda m, inputs: m.encode_context(**inputs))(model, context_inputs())
  noise = jax.random.normal(jax.random.key(3), (3, 8, 8, 3))
  whole = nnx.jit(lambda model, noise: samplers.sample(
      samplers.guided_velocity(model, ctx, mask), noise, steps=2, method=method))(model, noise)
  one = render(model, noise, ctx, mask, chunks=1, steps=2, method=method)
  np.testing.assert_allclose(one, whole, atol=1e-6)
  # K=2 renders the first stripe, then the second conditioned on it: a different result.
  two = render(model, noise, ctx, mask, chunks=2, steps=2, method=method)
  assert float(jnp.abs(two - whole).max()) > 1e-3


def test_chunked_rendering_renders_stripes_in_order():
  model = tiny_renderer()
  ctx, mask = nnx.jit(lambda m, inputs: m.encode_context(**inputs))(model, context_inputs())
  noise = jax.random.normal(jax.random.key(3), (3, 8, 8, 3))
  full = render(model, noise, ctx, mask, chunks=4, steps=2)
  # The first stripe (2 latent rows = 1 token row) never sees later stripes,
  # which are still noise when it is rendered: changing their noise leaves it unchanged.
  other = noise.at[:, 2:].set(jax.random.normal(jax.random.key(4), (3, 6, 8, 3)))
  again = render(model, other, ctx, mask, chunks=4, steps=2)
  np.testing.assert_allclose(again[:, :2], full[:, :2], atol=1e-6)
  assert float(jnp.abs(again[:, 2:] - full[:, 2:]).max()) > 1e-3


def test_training_states_cover_every_stripe_layout():
  states = np.asarray(chunked.training_states(jax.random.key(0), 4000, 4, (1, 2, 4)))
  assert states.shape == (4000, 16)
  rows = states.reshape(4000, 4, 4)
  assert np.all(rows == rows[:, :, :1])  # stripes are whole token rows
  # States never decrease down the rows (CLEAN, then NOISY, then FUTURE).
  assert np.all(np.diff(rows[:, :, 0], axis=1) >= 0)
  assert np.all((states == 1).any(axis=1))  # something to learn in every example
  whole = (states == 1).all(axis=1).mean()
  assert 0.25 < whole < 0.45  # K=1 is one of three equally likely choices


def test_token_times_follow_states():
  state = jnp.array([[0, 1, 2]])
  np.testing.assert_allclose(flow.token_times(state, jnp.array([0.3])), [[0.0, 0.3, 1.0]])


def test_residual_renderer_renders_around_the_plan():
  from unified_mm.models.renderer.rendering import render_latents
  model = tiny_renderer()
  residual = nnx.clone(model)
  residual.plan_residual = 0.25
  inputs = context_inputs()
  plain = render_latents(model, jax.random.key(5), steps=2, method="heun", **inputs)
  around = render_latents(residual, jax.random.key(5), steps=2, method="heun", **inputs)
  np.testing.assert_allclose(around, inputs["plan"] + 0.25 * plain, atol=1e-5)
  latent = jax.random.normal(jax.random.key(6), inputs["plan"].shape)
  np.testing.assert_allclose(
      residual.latent_from(residual.diffusion_target(latent, inputs["plan"]), inputs["plan"]),
      latent, atol=1e-6)
  with pytest.raises(ValueError, match="plan_residual"):
    Renderer(latent_size=8, latent_channels=3, visual_codes=50, visual_grid=4, text_source="none",
             plan_residual=0.25, rngs=nnx.Rngs(0))
