"""Parameter counts without allocating: from `nnx.eval_shape`, and in closed form."""

from __future__ import annotations

import math
from collections.abc import Mapping

import jax
from flax import nnx

from unified_mm.models.transformer.model import Transformer


def abstract_model(model_kwargs: Mapping) -> Transformer:
  """The model with ShapeDtypeStructs for values: nothing is allocated."""
  return nnx.eval_shape(lambda: Transformer(**dict(model_kwargs), rngs=nnx.Rngs(0)))


def count_params(model_kwargs: Mapping) -> int:
  state = nnx.state(abstract_model(model_kwargs), nnx.Param)
  return sum(math.prod(x.shape) for x in jax.tree.leaves(state))


def param_formula(*, vocab_size: int, d_model: int, num_layers: int, num_heads: int,
                  num_kv_heads: int, head_dim: int, mlp_dim: int, qk_norm: bool = True,
                  tie_embeddings: bool = False, code_levels=(), **unused) -> int:
  """The same count written out, to cross-check the module tree."""
  del unused
  attn = d_model * head_dim * (2 * num_heads + 2 * num_kv_heads)
  mlp = 3 * d_model * mlp_dim
  norms = 2 * d_model + (2 * head_dim if qk_norm else 0)
  embed = vocab_size * d_model * (1 if tie_embeddings else 2)
  digits = 2 * sum(code_levels) * d_model  # code_digits.py: an input and an output vector each
  return num_layers * (attn + mlp + norms) + embed + digits + d_model
