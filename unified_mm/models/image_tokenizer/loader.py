"""Restores a trained tokenizer from its workdir, frozen, for other stages.

    model, stats = load_tokenizer("runs/shapes/tokenizer")
    z = model.encode_latent(images)                      # [B, 16, 16, Cz]
    z_normalised = (z - stats.mean) / stats.std          # what the renderer diffuses
    ids = model.encode_codes(images)                     # [B, h, w] int32 (16 x 16 in the shapes preset)

The model is rebuilt from the config saved in the checkpoint, so a caller needs
nothing but the directory. `latent_stats.json` is written by the tokenizer
evaluator (per-channel mean/std of z on held-out scenes); when a workdir lacks
it, the statistics are computed here from freshly rendered scenes.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import jax
import numpy as np
from flax import nnx

from unified_mm.models.image_tokenizer.autoencoder import TokenizerAutoencoder
from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.sharding import activate, rules_from_config
from unified_mm.train.checkpoint import open_run
from unified_mm.train.state import split_params

LATENT_STATS_FILE = "latent_stats.json"


@dataclasses.dataclass(frozen=True)
class LatentStats:
  mean: np.ndarray  # [Cz]
  std: np.ndarray   # [Cz]

  def normalise(self, z):
    return (z - self.mean) / self.std

  def denormalise(self, z):
    return z * self.std + self.mean

  def write(self, workdir: str | pathlib.Path, **extra) -> None:
    """WORKDIR/latent_stats.json, what `latent_stats` reads back (+ `extra` keys)."""
    stats = {"mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std], **extra}
    (pathlib.Path(workdir) / LATENT_STATS_FILE).write_text(json.dumps(stats, indent=1) + "\n")


def _saved_model_config(saved: dict) -> tuple[dict, tuple]:
  """Model kwargs and rules from a saved config; JSON lists become tuples."""
  model_kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in saved["model"].items()}
  return model_kwargs, rules_from_config(saved.get("rules", []))


def load_tokenizer(workdir: str | pathlib.Path, step: int | None = None, *,
                   devices=None, mesh=None) -> tuple[TokenizerAutoencoder, LatentStats]:
  """(frozen model, latent statistics) from the latest (or given) checkpoint of a workdir.

  Params are replicated over `devices` (default: all); the tokenizer is small
  and every stage that uses it runs it data-parallel. `mesh` (placement.CONFIG
  or axis sizes) shards them by the saved rules instead, as in training.
  """
  workdir = pathlib.Path(workdir)
  if mesh is not None:
    return _load_placed(workdir, step, devices, mesh)
  with open_run(workdir, step, "complete tokenizer") as (ckpts, step, saved):
    model_kwargs, rules = _saved_model_config(saved)
    replicated = tuple((name, None) for name, _ in rules)
    mesh = make_mesh({"data": -1}, devices)
    with activate(mesh, replicated):
      abstract = nnx.eval_shape(lambda: TokenizerAutoencoder(**model_kwargs, rngs=nnx.Rngs(0)))
      model_def, abstract_params = split_params(abstract)
      sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
      target = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sharding)
                for k, v in abstract_params.items()}
      params = ckpts.restore_params(step, target)
  model = model_def.module(params)
  return model, latent_stats(workdir, model)


def _load_placed(workdir: pathlib.Path, step, devices, mesh):
  """Restored straight into the training shardings of the saved rules over `mesh`."""
  import types  # noqa: PLC0415

  from unified_mm.parallel.placement import stage_mesh  # noqa: PLC0415
  from unified_mm.train.state import abstract_model  # noqa: PLC0415
  with open_run(workdir, step, "complete tokenizer") as (ckpts, step, saved):
    model_kwargs, rules = _saved_model_config(saved)
    placed = stage_mesh(mesh, saved.get("mesh") or {"data": -1}, devices)
    saved_model = types.SimpleNamespace(
        build_model=lambda rngs: TokenizerAutoencoder(**model_kwargs, rngs=rngs))
    model_def, abstract_params, shardings = abstract_model(saved_model, 0, placed, rules)
    params = ckpts.restore_params(step, {
        k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=shardings[k])
        for k, v in abstract_params.items()})
  model = model_def.module(params)
  return model, latent_stats(workdir, model)


def latent_stats(workdir: pathlib.Path, model: TokenizerAutoencoder,
                 num_scenes: int = 256) -> LatentStats:
  path = workdir / LATENT_STATS_FILE
  if path.exists():
    d = json.loads(path.read_text())
    return LatentStats(np.asarray(d["mean"], np.float32), np.asarray(d["std"], np.float32))
  from unified_mm.data.shapes.render import render  # noqa: PLC0415
  from unified_mm.data.shapes.scene import scene_for_index  # noqa: PLC0415
  images = np.stack([render(scene_for_index(20_011, i, resolution=model.image_size, min_objects=1,
                                            max_objects=4)) for i in range(num_scenes)])
  z = np.asarray(nnx.jit(TokenizerAutoencoder.encode_latent)(model, images))
  return LatentStats(z.mean(axis=(0, 1, 2)), np.maximum(z.std(axis=(0, 1, 2)), 1e-6))
