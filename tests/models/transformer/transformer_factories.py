"""Tiny transformer factories shared by the transformer tests (a module of its own:
`from conftest import` resolves to whichever conftest.py pytest loaded last)."""

import jax
from flax import nnx

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


def flat_params(model) -> dict:
  """The model's params as a flat dict named like the trainer's (`blocks.0.attn.wq`)."""
  def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
      out.update(flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out
  return flat(nnx.to_pure_dict(nnx.state(model, nnx.Param)))


def load_flat(model, params: dict):
  """Writes flat params into `model` (same names as `flat_params`); returns it."""
  nested = {}
  for name, value in params.items():
    *parents, leaf = [int(p) if p.isdigit() else p for p in name.split(".")]
    d = nested
    for p in parents:
      d = d.setdefault(p, {})
    d[leaf] = value
  state = nnx.state(model, nnx.Param)
  nnx.replace_by_pure_dict(state, nested)
  nnx.update(model, state)
  return model


def scanned_copy(model: Transformer, **overrides) -> Transformer:
  """The scanned-layers model holding `model`'s (unrolled) parameters, restacked."""
  from unified_mm.models.layer_stack import stack_params
  kwargs = {**TINY, **overrides, "scan_layers": True}
  other = nnx.eval_shape(lambda: Transformer(**kwargs, rngs=nnx.Rngs(0)))
  return load_flat(other, stack_params(flat_params(model), "blocks"))
