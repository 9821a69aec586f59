"""Restores a trained renderer (EMA params when the run kept them) from its workdir.

    model, config = load_renderer("runs/shapes/renderer")
    z = render_latents(model, key, codes=codes, **config.sample)

The model is rebuilt from the config saved in the checkpoint, on the given
devices with params replicated (inference is data-parallel).
"""

from __future__ import annotations

import pathlib

import ml_collections
from jax.sharding import NamedSharding, PartitionSpec

from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.sharding import rules_from_config
from unified_mm.train.checkpoint import open_run


def load_renderer(workdir: str | pathlib.Path, step: int | None = None, *, use_ema: bool = True,
                  devices=None):
  """(Renderer, its run config) from the latest (or given) checkpoint of a workdir."""
  import jax  # noqa: PLC0415

  from unified_mm.tasks.renderer import RendererTask  # noqa: PLC0415
  from unified_mm.train.trainer import plan_state  # noqa: PLC0415
  with open_run(workdir, step, "complete renderer") as (ckpts, step, saved):
    config = ml_collections.ConfigDict(saved)
    devices = list(devices if devices is not None else jax.local_devices()[:1])
    mesh = make_mesh({"data": -1}, devices)
    replicated = tuple((name, None) for name, _ in rules_from_config(config.rules))
    plan = plan_state(RendererTask(config), config, mesh, replicated)
    target = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=NamedSharding(mesh, PartitionSpec())),
        plan.target)
    state, _ = ckpts.restore(step, target)
  params = state.ema if (use_ema and state.ema is not None) else state.params
  return plan.model_def.module(params), config
