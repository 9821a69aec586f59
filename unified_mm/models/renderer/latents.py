"""The frozen image tokenizer as the renderer sees it: images <-> normalised
latents, images -> visual-token ids, ids -> preview images.

    frontend = load_frontend("runs/shapes/tokenizer")   # or "" for the stand-in
    z, ids = frontend.encode(images_uint8)               # [B, 16, 16, Cz], [B, h, w] (16 x 16 in the shapes preset)
    images = frontend.decode_latent(z)                   # uint8 [B, 64, 64, 3]

`z` is normalised with the tokenizer's recorded per-channel mean/std, so the
renderer diffuses a unit-scale latent. The stand-in (no trained tokenizer:
tests and smoke runs) uses the 4x4 average-pooled image as its latent and the
data pipeline's parameter-free StandInCodes as its visual tokens.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unified_mm.models.image_tokenizer.layers import to_uint8
from unified_mm.parallel.sharding import on_mesh, params_mesh


class TrainedFrontend:
  """A trained TokenizerAutoencoder from its workdir (replicated, jitted calls)."""

  def __init__(self, workdir: str | pathlib.Path, devices=None, mesh=None):
    from unified_mm.models.image_tokenizer.loader import load_tokenizer  # noqa: PLC0415
    self.workdir = pathlib.Path(workdir)
    # mesh (parallel/placement.py): sharded as in training; calls run on that mesh.
    self.model, self.stats = load_tokenizer(self.workdir, devices=devices, mesh=mesh)
    self.mean = jnp.asarray(self.stats.mean, jnp.float32)
    self.std = jnp.asarray(self.stats.std, jnp.float32)
    self._mesh = params_mesh(self.model)
    self.latent_size = self.model.latent_grid[0]
    self.latent_channels = self.model.latent_channels
    self.code_grid = self.model.code_grid[0]
    self.num_codes = self.model.codebook_size
    self.fsq_levels = tuple(self.model.fsq.levels)
    self.image_size = self.model.image_size
    self._encode = nnx.jit(lambda m, im, mean, std: (
        (m.encode_latent(im) - mean) / std, m.encode_codes(im)))
    self._decode_latent = nnx.jit(lambda m, z, mean, std: to_uint8(m.decode_latent(z * std + mean)))
    self._decode_codes = nnx.jit(lambda m, ids: to_uint8(m.decode_codes(ids)))
    # The plan is the latent of the preview *image*: rounded and clipped like
    # any image, since the preview decoder overshoots saturated colours freely
    # and the encoder has never seen values outside [0, 255].
    self._plan = nnx.jit(lambda m, ids, mean, std: (
        m.encode_latent(to_uint8(m.decode_codes(ids))) - mean) / std)

  def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with on_mesh(self._mesh):
      z, ids = self._encode(self.model, jnp.asarray(images), self.mean, self.std)
    return np.asarray(z, np.float32), np.asarray(ids, np.int32)

  def decode_latent(self, z) -> np.ndarray:
    with on_mesh(self._mesh):
      return np.asarray(self._decode_latent(self.model, jnp.asarray(z), self.mean, self.std))

  def decode_codes(self, ids) -> np.ndarray:
    with on_mesh(self._mesh):
      return np.asarray(self._decode_codes(self.model, jnp.asarray(ids, jnp.int32)))

  def plan_latent(self, ids) -> np.ndarray:
    """[B, Hh, Ww, Cz] normalised latent of the preview decode of `ids` (the renderer's plan)."""
    with on_mesh(self._mesh):
      return np.asarray(self._plan(self.model, jnp.asarray(ids, jnp.int32), self.mean, self.std))


@dataclasses.dataclass
class StandInFrontend:
  """Parameter-free latents (pooled pixels) and codes (pooled, quantised colours)."""
  image_size: int = 64
  latent_size: int = 16
  code_grid: int = 8
  levels: int = 4
  latent_channels: int = 3

  @functools.cached_property
  def stand_in_codes(self):
    """Its codes are the data pipeline's stand-in ones (data/stand_in_codes.py): both agree."""
    from unified_mm.data.stand_in_codes import StandInCodes  # noqa: PLC0415
    return StandInCodes(self.code_grid, self.levels)

  @property
  def num_codes(self) -> int:
    return self.stand_in_codes.num_codes

  @property
  def fsq_levels(self) -> tuple[int, ...]:
    return self.stand_in_codes.fsq_levels

  def encode(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    b, s = images.shape[0], self.image_size // self.latent_size
    x = images.astype(np.float32) / 127.5 - 1.0
    z = x.reshape(b, self.latent_size, s, self.latent_size, s, 3).mean(axis=(2, 4))
    return z, self.stand_in_codes(images)

  def decode_latent(self, z) -> np.ndarray:
    s = self.image_size // self.latent_size
    x = np.repeat(np.repeat(np.asarray(z), s, axis=1), s, axis=2)
    return np.asarray(to_uint8(x))

  def decode_codes(self, ids) -> np.ndarray:
    return self.stand_in_codes.to_image(np.asarray(ids), self.image_size)

  def plan_latent(self, ids) -> np.ndarray:
    return self.encode(self.decode_codes(ids))[0]


def load_frontend(tokenizer_dir: str, devices=None):
  """The trained tokenizer of `tokenizer_dir`, or the stand-in when it is ""."""
  if not tokenizer_dir:
    return StandInFrontend()
  return TrainedFrontend(tokenizer_dir, devices=devices or jax.local_devices()[:1])
