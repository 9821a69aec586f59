"""The DiT's scanned block stack (`scan_layers=True`) == its unrolled one with the
same (restacked) params: velocity and gradients, with and without remat."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from param_trees import flat_params, load_flat
from unified_mm.models.layer_stack import stack_params, unstack_params
from unified_mm.models.renderer.dit import DiT
from unified_mm.models.renderer.dit import CLEAN, FUTURE, NOISY

KW = dict(latent_size=8, latent_channels=3, patch_size=2, embed_dim=32, depth=3, num_heads=2)


@pytest.fixture(scope="module")
def unrolled():
  with nnx.use_eager_sharding(False):
    model = jax.jit(lambda: DiT(**KW, rngs=nnx.Rngs(0)))()
  # adaLN-zero starts as the identity: perturb every param so all of them matter.
  params = flat_params(model)
  keys = jax.random.split(jax.random.key(3), len(params))
  return load_flat(model, {n: v + 0.2 * jax.random.normal(k, v.shape)
                       for (n, v), k in zip(sorted(params.items()), keys)})


def _scanned(unrolled, **kw):
  with nnx.use_eager_sharding(False):
    model = nnx.eval_shape(lambda: DiT(**KW, scan_layers=True, **kw, rngs=nnx.Rngs(0)))
  return load_flat(model, stack_params(flat_params(unrolled), "blocks"))


def _inputs(b=2):
  keys = jax.random.split(jax.random.key(1), 3)
  x = jax.random.normal(keys[0], (b, 8, 8, 3))
  t = jax.random.uniform(keys[1], (b,))
  context = jax.random.normal(keys[2], (b, 5, 32))
  context_mask = jnp.asarray([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)
  state = jnp.asarray([[CLEAN] * 4 + [NOISY] * 8 + [FUTURE] * 4, [NOISY] * 16], jnp.int32)
  return x, t, context, context_mask, state


def test_scanned_dit_params_are_stacked(unrolled):
  scanned = _scanned(unrolled)
  kernel = scanned.layers.ada.kernel
  assert kernel.shape == (3, 32, 6 * 32)
  assert kernel.get_metadata()["out_sharding"] == ("layers", "embed", "mlp")
  assert sum(v.size for v in flat_params(scanned).values()) == sum(v.size for v in flat_params(unrolled).values())


@pytest.mark.parametrize("remat", ["none", "full"])
def test_scanned_dit_equals_unrolled(unrolled, remat):
  scanned = _scanned(unrolled, remat=remat)
  inputs = _inputs()
  forward = jax.jit(lambda m: m(*inputs[:4], token_state=inputs[4]))
  np.testing.assert_allclose(forward(scanned), forward(unrolled), atol=1e-5, rtol=1e-5)
  loss = lambda m: jnp.mean(forward(m) ** 2)
  g1 = flat_params(jax.jit(jax.grad(loss))(unrolled))
  g2 = unstack_params(flat_params(jax.jit(jax.grad(loss))(scanned)), "blocks")
  assert g1.keys() == g2.keys()
  for name in g1:
    np.testing.assert_allclose(g2[name], g1[name], atol=1e-5, rtol=1e-4, err_msg=name)
