"""The training state and how it is built: abstractly first, then sharded.

Parameters live in the state as a *flat* dict `{"layers.0.mlp.wi": array}`
rather than as an `nnx.State`: a flat dict of arrays is what Optax, Orbax and
the weight-decay mask all handle without surprises, and its names are the
names users see in checkpoints. `ModelDef` turns such a dict back into the
task's NNX module inside the step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from unified_mm.parallel.sharding import activate, state_shardings

Params = dict[str, jax.Array]


@flax.struct.dataclass
class TrainState:
  step: jax.Array            # [] int32: optimiser steps already taken
  params: Params
  opt_state: optax.OptState
  ema: Params | None         # exponential moving average of params, if enabled


def _key_name(key) -> str | None:
  if isinstance(key, jax.tree_util.DictKey):
    return str(key.key)
  if isinstance(key, jax.tree_util.SequenceKey):
    return str(key.idx)
  if isinstance(key, jax.tree_util.GetAttrKey):
    return None if key.name == "value" else key.name  # the Variable's own payload
  return str(key)


def param_name(path) -> str:
  return ".".join(n for n in map(_key_name, path) if n is not None)


@dataclasses.dataclass(frozen=True)
class ModelDef:
  """Static structure of the task's model: rebuilds a module from flat params."""
  graphdef: Any
  treedef: Any       # of the nnx.State holding the Params
  names: tuple[str, ...]

  def module(self, params: Params) -> nnx.Module:
    state = jax.tree.unflatten(self.treedef, [params[n] for n in self.names])
    return nnx.merge(self.graphdef, state)


def split_params(model: nnx.Module) -> tuple[ModelDef, Params]:
  graphdef, state, rest = nnx.split(model, nnx.Param, ...)
  if jax.tree.leaves(rest):
    names = [param_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(rest)[0]]
    raise ValueError(
        f"the model holds non-Param state {names[:5]}: the trainer trains and checkpoints "
        "nnx.Param only; take RNGs per call (task.loss gets one) instead of storing them")
  leaves, treedef = jax.tree_util.tree_flatten_with_path(state)
  names = tuple(param_name(p) for p, _ in leaves)
  return ModelDef(graphdef, treedef, names), dict(zip(names, (v for _, v in leaves)))


def abstract_model(task, seed: int, mesh, rules) -> tuple[ModelDef, Params, dict[str, NamedSharding]]:
  """Model structure, param ShapeDtypeStructs and shardings, with no FLOP spent."""
  with activate(mesh, rules):
    model = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(seed)))
    shardings = state_shardings(nnx.state(model, nnx.Param), mesh, rules)
  model_def, params = split_params(model)
  flat_shardings = {param_name(p): s for p, s in jax.tree_util.tree_flatten_with_path(
      shardings, is_leaf=lambda x: isinstance(x, NamedSharding))[0]}
  return model_def, params, flat_shardings


def _like_params(param_shardings: dict[str, NamedSharding], replicated: NamedSharding):
  """Sharding for an optimiser leaf: a leaf keyed by a param name is shaped like it."""
  def pick(path, leaf):
    last = path[-1] if path else None
    if isinstance(last, jax.tree_util.DictKey) and last.key in param_shardings and leaf.ndim:
      return param_shardings[last.key]
    return replicated
  return pick


def state_sharding(abstract_state: TrainState, param_shardings, mesh) -> TrainState:
  replicated = NamedSharding(mesh, PartitionSpec())
  return jax.tree_util.tree_map_with_path(_like_params(param_shardings, replicated), abstract_state)


def with_shardings(abstract_tree, shardings):
  """ShapeDtypeStructs carrying the target shardings: Orbax restores onto them."""
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                      abstract_tree, shardings)


def start_state(tx: optax.GradientTransformation, params: Params, use_ema: bool) -> TrainState:
  """Step 0 from given params: fresh optimiser moments (and EMA = params)."""
  ema = jax.tree.map(jnp.copy, params) if use_ema else None
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    opt_state=tx.init(params), ema=ema)


def make_init_fn(task, seed: int, tx: optax.GradientTransformation, use_ema: bool):
  """The whole init, to be jitted with out_shardings so no host holds full params."""
  def init() -> TrainState:
    _, params = split_params(task.build_model(nnx.Rngs(seed)))
    return start_state(tx, params, use_ema)
  return init
