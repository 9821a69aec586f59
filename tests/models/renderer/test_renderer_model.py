"""Renderer model: shapes, identity at init, and what each context path sees."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from renderer_factories import context_inputs, tiny_renderer


@nnx.jit
def _velocities(model, inputs_a, inputs_b, x, t):
  out = {}
  for name, inputs in (("a", inputs_a), ("b", inputs_b)):
    for keep in (True, False):
      ctx, mask = model.encode_context(keep=jnp.full((x.shape[0],), keep), **inputs)
      out[name, keep] = model.velocity(x, t, ctx, mask)
  return out


def test_dropped_context_removes_every_path_from_the_conditioning():
  model = tiny_renderer()
  assert model.visual_add  # the direct, co-located path is on in this model
  a, b = context_inputs(), context_inputs()
  b["codes"] = (b["codes"] + 7) % 50
  b["text_ids"] = (b["text_ids"] + 3) % 40
  b["plan"] = -b["plan"]
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
  v = _velocities(model, a, b, x, jnp.full((3,), 0.5))
  assert v["a", True].shape == (3, 8, 8, 3)
  assert float(jnp.abs(v["a", True] - v["b", True]).max()) > 1e-3
  np.testing.assert_allclose(v["a", False], v["b", False], atol=1e-5)


@pytest.mark.parametrize("visual_grid, cell", [(4, (1, 2)), (8, (3, 4))])
def test_visual_tokens_reach_their_own_location_first(visual_grid, cell):
  """Changing one visual token moves the co-located latent patch the most."""
  model = tiny_renderer(visual_grid)
  assert model.visual_add
  a = context_inputs(visual_grid=visual_grid)
  b = {k: v for k, v in a.items()}
  b["codes"] = a["codes"].at[:, cell[0], cell[1]].set((a["codes"][:, cell[0], cell[1]] + 5) % 50)
  x = jax.random.normal(jax.random.key(0), (3, 8, 8, 3))
  v = _velocities(model, a, b, x, jnp.full((3,), 0.5))
  diff = jnp.abs(v["a", True] - v["b", True]).sum(axis=(0, 3))  # [8, 8] latent positions
  # A 4x4 token grid of 2x2 latent patches: visual token (1, 2) of a 4x4 grid, or (3, 4) of
  # an 8x8 grid, lies in token (1, 2), latent rows 2-3, cols 4-5.
  patch = diff.reshape(4, 2, 4, 2).sum(axis=(1, 3))
  assert int(jnp.argmax(patch)) == 1 * 4 + 2
