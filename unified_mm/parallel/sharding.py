"""Logical axis names and the one place they become mesh shardings.

Model code names tensor dimensions by meaning (`batch`, `embed`, `mlp`, ...).
The config maps those names to mesh axes; switching FSDP <-> tensor <-> data
parallelism is therefore a config change, never a model change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import jax
from flax import nnx
from flax.core import spmd as core_spmd
from jax.sharding import NamedSharding, PartitionSpec

# Every logical name a model may use. A rule for a name outside this set is a
# typo in a config, and is rejected before anything compiles.
LOGICAL_AXES = frozenset({
    # transformer
    "batch", "length", "embed", "heads", "kv_heads", "head_dim", "mlp",
    "vocab", "layers", "cache_length",
    # convolutional / image models
    "height", "width", "channels", "conv_in", "conv_out", "kernel_h", "kernel_w",
    # renderer context
    "context", "patch",
})

Rules = tuple[tuple[str, str | tuple[str, ...] | None], ...]


def rules_from_config(rules) -> Rules:
  """Normalises config rules (lists from a ConfigDict) into Flax's tuple form."""
  out = []
  for name, axes in rules:
    if isinstance(axes, list):
      axes = tuple(axes)
    out.append((name, axes))
  return tuple(out)


def logical_to_spec(names: Sequence[str | None], rules: Rules) -> PartitionSpec:
  # A mesh axis can shard one dimension only; as in Flax's own rule matching,
  # a later dimension whose mesh axes are taken stays unsharded (e.g. an
  # activation's `embed` when `batch` already uses `fsdp`).
  table = dict(rules)
  used, spec = set(), []
  for n in names:
    axes = table.get(n) if n is not None else None
    flat = axes if isinstance(axes, tuple) else (() if axes is None else (axes,))
    if any(a in used for a in flat):
      axes, flat = None, ()
    used.update(flat)
    spec.append(axes)
  return PartitionSpec(*spec)


def named_sharding(mesh, names: Sequence[str | None], rules: Rules) -> NamedSharding:
  return NamedSharding(mesh, logical_to_spec(names, rules))


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
  """Pins an activation to its logical sharding; a no-op outside a mesh."""
  mesh = jax.sharding.get_abstract_mesh()
  rules = core_spmd.get_logical_axis_rules()
  if mesh.empty or not rules:
    return x
  spec = logical_to_spec(names, rules)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))


@contextlib.contextmanager
def activate(mesh, rules: Rules) -> Iterator[None]:
  """Sets the mesh and logical rules for model construction and tracing."""
  with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
    yield


def state_shardings(abstract_state, mesh, rules: Rules):
  """NamedShardings for an (abstract) nnx.State from its `out_sharding` metadata."""
  with nnx.logical_axis_rules(rules):
    specs = nnx.get_partition_spec(abstract_state)
  return jax.tree.map(
      lambda s: NamedSharding(mesh, s), specs,
      is_leaf=lambda s: isinstance(s, PartitionSpec))


def params_mesh(module: nnx.Module):
  """The mesh an already placed model's params live on."""
  return jax.tree.leaves(nnx.state(module, nnx.Param))[0].sharding.mesh


@contextlib.contextmanager
def on_mesh(mesh) -> Iterator[None]:
  """Calls into an already placed model under its own mesh (`params_mesh`) and no
  logical rules. A frozen helper (another stage's tokenizer, renderer or
  transformer, replicated on its own devices) called from inside a training
  loop would otherwise be traced against the loop's mesh and rules, whose
  device set differs."""
  with jax.set_mesh(mesh), nnx.logical_axis_rules(()):
    yield
