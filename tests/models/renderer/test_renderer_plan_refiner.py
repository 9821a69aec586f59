"""The plan refiner: identity when fresh, trained only by its own MSE, and the
plan that sampling starts from and renders around."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from renderer_factories import first_batch, perturbed, stand_in_task
from unified_mm.models.renderer.rendering import render_latents


@pytest.fixture(scope="module")
def task():
  # The refiner also upsamples its token features (8 x 8 codes, 16 x 16 latent).
  return stand_in_task("renderer", visual_codes=64, visual_grid=8, visual_levels=(4, 4, 4),
                       plan_channels=3, plan_refiner_width=16, plan_refiner_depth=1)


@pytest.fixture(scope="module")
def batch(task):
  return first_batch(task)


def _model(task, perturb):
  with nnx.use_eager_sharding(False):
    model = task.build_model(nnx.Rngs(0))
  return perturbed(model) if perturb else model


def test_fresh_refiner_is_the_identity(task, batch):
  model = _model(task, perturb=False)
  refined = model.refine_plan(batch["codes"], batch["plan"])
  np.testing.assert_array_equal(np.asarray(refined), np.asarray(batch["plan"]))


def test_refiner_learns_only_from_the_plan_loss(task, batch):
  model = _model(task, perturb=True)
  rng = jax.random.key(3)

  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def refiner_grads(fn):
    grads = jax.grad(lambda p: fn(nnx.merge(graphdef, p, rest)))(params)
    return [v for path, v in nnx.to_flat_state(grads) if path[0] == "plan_refiner"]

  total = refiner_grads(lambda m: task.loss(m, batch, rng)[0])
  plan_only = refiner_grads(lambda m: 0.5 * jnp.mean(jnp.square(
      m.refine_plan(batch["codes"], batch["plan"]) - batch["latent"])))
  assert plan_only and max(float(jnp.abs(g[...]).max()) for g in plan_only) > 0
  for a, b in zip(total, plan_only):
    np.testing.assert_allclose(np.asarray(a[...]), np.asarray(b[...]), rtol=1e-5, atol=1e-7)
  _, metrics = task.loss(model, batch, rng)
  np.testing.assert_allclose(float(metrics["loss"]),
                             float(metrics["flow_loss"] + 0.5 * metrics["plan_mse"]), rtol=1e-6)


def test_sampling_renders_around_the_refined_plan(task, batch):
  model = _model(task, perturb=True)
  inputs = task.context_inputs(batch)
  refined = model.refine_plan(batch["codes"], batch["plan"])
  assert float(jnp.abs(refined - batch["plan"]).max()) > 1e-3
  # start = 0: no flow step at all, so the rendered latent is the refined plan.
  z = render_latents(model, jax.random.key(0), steps=2, start=0.0, **inputs)
  np.testing.assert_allclose(np.asarray(z), np.asarray(refined), atol=1e-5)
