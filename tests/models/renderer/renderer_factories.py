"""Tiny renderer factories shared by the renderer tests."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unified_mm.config.loading import load_config
from unified_mm.models.renderer import Renderer
from unified_mm.tasks import make_task

SHAPES = __import__("pathlib").Path(__file__).resolve().parents[3] / "experiments/shapes.py"


@functools.cache
def tiny_renderer(visual_grid=4):
  """visual_grid 4: one visual token per latent token (4x4 tokens of 2x2 latent patches);
  8: a finer grid, 2x2 visual tokens per latent token."""
  kw = dict(latent_size=8, latent_channels=3, patch_size=2, embed_dim=32, depth=2, num_heads=2,
            visual_codes=50, visual_grid=visual_grid, text_source="own", text_vocab=40, text_len=6,
            visual_levels=(5, 10), plan_channels=3)
  with nnx.use_eager_sharding(False):
    model = Renderer(**kw, rngs=nnx.Rngs(0))
  return perturbed(model)


def perturbed(model):
  """adaLN-zero (and zero-init outputs) start as the identity; perturb every param so
  the tests see a model whose output depends on all of its inputs."""
  nnx.update(model, _perturb(nnx.state(model, nnx.Param), jax.random.key(7)))
  return model


@jax.jit
def _perturb(params, key):
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(key, len(leaves))
  return jax.tree.unflatten(
      treedef, [p + 0.2 * jax.random.normal(k, p.shape) for p, k in zip(leaves, keys)])


def context_inputs(b=3, visual_grid=4):
  rng = np.random.default_rng(0)
  return dict(codes=jnp.asarray(rng.integers(0, 50, (b, visual_grid, visual_grid))),
              text_ids=jnp.asarray(rng.integers(0, 40, (b, 6))),
              text_mask=jnp.asarray(np.arange(6)[None] < np.array([[6], [3], [1]])[:b]),
              plan=jnp.asarray(rng.normal(size=(b, 8, 8, 3)), jnp.float32))


def stand_in_task(variant: str, **model):
  """A renderer task of a shapes variant on the stand-in tokenizer (3 pooled-pixel
  latent channels at 16 x 16, 64 codes on an 8 x 8 grid), the plan loss at 0.5."""
  c = load_config(f"{SHAPES}:{variant}")
  c.data.image_tokenizer_dir = ""
  c.model.update(latent_channels=3, embed_dim=32, depth=1, num_heads=2, **model)
  c.loss.plan_weight = 0.5
  return make_task(c)


def first_batch(task, rows: int = 4) -> dict:
  return {k: jnp.asarray(v) for k, v in next(task.make_data(0, 1, rows)).items()}
