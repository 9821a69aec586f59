"""Tiny transformer factories shared by the transformer tests (a module of its own:
`from conftest import` resolves to whichever conftest.py pytest loaded last)."""

import jax
from flax import nnx

from param_trees import flat_params, load_flat  # noqa: F401 (re-exported for the tests)
from unified_mm.models.transformer import Transformer

TINY = dict(vocab_size=128, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
            head_dim=8, mlp_dim=64, max_len=128)


def make_tiny(seed: int = 0, **overrides) -> Transformer:
  """Built inside jit: one compile instead of one per initializer op."""
  kwargs = {**TINY, **overrides}
  return jax.jit(lambda: Transformer(**kwargs, rngs=nnx.Rngs(seed)))()


def like(model: Transformer, **overrides) -> Transformer:
  """A model with other static options (remat, dtype) and `model`'s parameters,
  without compiling another initializer."""
  kwargs = {**TINY, **overrides}
  other = nnx.eval_shape(lambda: Transformer(**kwargs, rngs=nnx.Rngs(0)))
  nnx.update(other, nnx.state(model))
  return other


def scanned_copy(model: Transformer, **overrides) -> Transformer:
  """The scanned-layers model holding `model`'s (unrolled) parameters, restacked."""
  from unified_mm.models.layer_stack import stack_params
  kwargs = {**TINY, **overrides, "scan_layers": True}
  other = nnx.eval_shape(lambda: Transformer(**kwargs, rngs=nnx.Rngs(0)))
  return load_flat(other, stack_params(flat_params(model), "blocks"))
