"""Restores a trained renderer (EMA params when the run kept them) from its workdir.

    model, config = load_renderer("runs/shapes/renderer")
    z = render_latents(model, key, codes=codes, **config.sample)

The model is rebuilt from the config saved in the checkpoint, on the given
devices with params replicated (inference is data-parallel). The whole train
state is planned (EMA included) so that the checkpoint restores as saved.
`mesh=` (parallel/placement.py) restores it sharded by its saved rules instead;
the rules are returned by `load_renderer_placed`.
"""

from __future__ import annotations

import dataclasses
import pathlib

import ml_collections
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from unified_mm.models.renderer.model import Renderer
from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.sharding import rules_from_config
from unified_mm.train.checkpoint import open_run


@dataclasses.dataclass(frozen=True)
class _SavedModel:
  """What `plan_state` asks of a task: the model, built from the saved `model` config."""
  model: ml_collections.ConfigDict

  def build_model(self, rngs: nnx.Rngs) -> Renderer:
    return Renderer(**self.model, rngs=rngs)


def load_renderer(workdir: str | pathlib.Path, step: int | None = None, *, use_ema: bool = True,
                  devices=None):
  """(Renderer, its run config) from the latest (or given) checkpoint of a workdir."""
  import jax  # noqa: PLC0415

  from unified_mm.train.trainer import plan_state  # noqa: PLC0415
  with open_run(workdir, step, "complete renderer") as (ckpts, step, saved):
    config = ml_collections.ConfigDict(saved)
    devices = list(devices if devices is not None else jax.local_devices()[:1])
    mesh = make_mesh({"data": -1}, devices)
    replicated = tuple((name, None) for name, _ in rules_from_config(config.rules))
    plan = plan_state(_SavedModel(config.model), config, mesh, replicated)
    target = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=NamedSharding(mesh, PartitionSpec())),
        plan.target)
    state, _ = ckpts.restore(step, target)
  params = state.ema if (use_ema and state.ema is not None) else state.params
  return plan.model_def.module(params), config


def load_renderer_placed(workdir: str | pathlib.Path, mesh, step: int | None = None, *,
                         use_ema: bool = True, devices=None):
  """(Renderer, its run config, its rules), restored sharded as in training onto
  `mesh` (placement.CONFIG: its saved mesh; or axis sizes) over `devices` (all)."""
  from unified_mm.parallel.placement import stage_mesh  # noqa: PLC0415
  from unified_mm.train.trainer import plan_state  # noqa: PLC0415
  with open_run(workdir, step, "complete renderer") as (ckpts, step, saved):
    config = ml_collections.ConfigDict(saved)
    placed = stage_mesh(mesh, config.mesh, devices)
    rules = rules_from_config(config.rules)
    plan = plan_state(_SavedModel(config.model), config, placed, rules)
    state, _ = ckpts.restore(step, plan.target)  # the target carries the training shardings
  params = state.ema if (use_ema and state.ema is not None) else state.params
  return plan.model_def.module(params), config, rules
