"""The layout renderer: no visual tokens, the plan latent decoded from the written
plan, trained only by its own MSE, the flow rendering around it; boxes act locally."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from renderer_factories import first_batch, perturbed, stand_in_task
from unified_mm.models.renderer import Renderer
from unified_mm.models.renderer.rendering import render_latents


@pytest.fixture(scope="module")
def task():
  return stand_in_task("renderer_layout", layout_plan_width=16, layout_plan_depth=1)


@pytest.fixture(scope="module")
def batch(task):
  return first_batch(task)


@pytest.fixture(scope="module")
def model(task):
  with nnx.use_eager_sharding(False):
    return perturbed(task.build_model(nnx.Rngs(0)))


def test_every_row_carries_its_plan_and_no_codes_are_read(task, batch):
  assert "codes" not in task.context_inputs(batch)
  assert bool(batch["layout_mask"].any(axis=1).all())


def test_plan_learns_only_from_its_own_loss(task, batch, model):
  rng = jax.random.key(3)
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def plan_grads(fn):
    grads = jax.grad(lambda p: fn(nnx.merge(graphdef, p, rest)))(params)
    return [v for path, v in nnx.to_flat_state(grads) if path[0] == "layout_plan"]

  inputs = task.context_inputs(batch)
  total = plan_grads(lambda m: task.loss(m, batch, rng)[0])
  plan_only = plan_grads(lambda m: 0.5 * jnp.mean(jnp.square(m.base_plan(inputs)
                                                             - batch["latent"])))
  assert plan_only and max(float(jnp.abs(g[...]).max()) for g in plan_only) > 0
  for a, b in zip(total, plan_only):
    np.testing.assert_allclose(np.asarray(a[...]), np.asarray(b[...]), rtol=1e-5, atol=1e-7)


def test_a_box_changes_the_plan_most_around_it(task, batch, model):
  inputs = task.context_inputs(batch)
  plan = np.asarray(model.base_plan(inputs))
  boxes = np.array(inputs["layout_boxes"])
  mask = np.array(inputs["layout_mask"])
  row = int(np.flatnonzero(mask.sum(axis=1) == 1)[0]) if (mask.sum(axis=1) == 1).any() else 0
  mask[row] = False
  mask[row, 0] = True
  boxes[row, 0] = [0.0, 0.0, 0.25, 0.25]  # top-left quarter of the image
  moved = dict(inputs, layout_boxes=jnp.asarray(boxes), layout_mask=jnp.asarray(mask))
  near = np.asarray(model.base_plan(moved))[row]
  boxes[row, 0] = [0.75, 0.75, 1.0, 1.0]  # bottom-right
  far = np.asarray(model.base_plan(dict(moved, layout_boxes=jnp.asarray(boxes))))[row]
  diff = np.abs(near - far).sum(axis=-1)  # [L, L]
  side = diff.shape[0]
  # The corners the box moved between change most; the centre, which neither box
  # covers, only through the group norms' statistics.
  centre = diff[side // 2 - 1:side // 2 + 1, side // 2 - 1:side // 2 + 1].max()
  assert diff[:side // 4, :side // 4].max() > 2 * centre
  assert diff[side // 4 * 3:, side // 4 * 3:].max() > 2 * centre
  assert plan.shape[1:3] == (side, side)


def test_sampling_renders_around_the_written_plan(task, batch, model):
  inputs = task.context_inputs(batch)
  # start = 0: no flow step at all, so the rendered latent is the plan decoded from the layout.
  z = render_latents(model, jax.random.key(0), steps=2, start=0.0, **inputs)
  np.testing.assert_allclose(np.asarray(z), np.asarray(model.base_plan(inputs)), atol=1e-5)


def test_layout_plan_needs_a_plan_and_no_codes():
  with pytest.raises(ValueError, match="layout_plan_width"):
    Renderer(latent_size=8, latent_channels=3, visual_codes=50, text_vocab=40, layout_len=4,
             layout_plan_width=8, rngs=nnx.Rngs(0))
