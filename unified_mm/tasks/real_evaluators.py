"""Evaluators of the image stages on a real source's held-out records
(`data.held_out_records`): the shapes world's evaluators score scenes (the analyzer's
round trip) and do not apply; these keep what makes sense on photographs.

  tokenizer  reconstruction PSNR of both paths, code usage and perplexity, a grid
             (original | latent decode | code decode), and latent_stats.json (the
             renderer normalises its latent with it)
  renderer   held-out flow loss (the task's own loss at a fixed key) and a grid of
             samples from the held-out records' tokens and captions beside the
             tokenizer's decode of their true latent
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import jax
import numpy as np
from flax import nnx
from PIL import Image

from unified_mm.models.image_tokenizer.layers import to_uint8
from unified_mm.models.image_tokenizer.loader import LatentStats


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
  """Mean over images of PSNR in dB on the 0..255 scale."""
  mse = np.mean(np.square(a.astype(np.float64) - b.astype(np.float64)), axis=(1, 2, 3))
  return float(np.mean(10.0 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))))


def code_usage(ids: np.ndarray, codebook_size: int) -> tuple[float, float]:
  """(share of the codebook used, perplexity of the id histogram)."""
  counts = np.bincount(np.asarray(ids).ravel(), minlength=codebook_size)
  p = counts[counts > 0] / counts.sum()
  return float((counts > 0).mean()), float(np.exp(-(p * np.log(p)).sum()))


def write_grid(rows: list[np.ndarray], path: pathlib.Path) -> None:
  """Each [K, S, S, 3] uint8 array one row of the PNG."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(np.concatenate([np.concatenate(list(r), axis=1) for r in rows])).save(path)


def _next_index(directory: pathlib.Path, prefix: str) -> int:
  return len(list(directory.glob(f"{prefix}_*.png")))  # continues after a resume


class TokenizerHeldOut:
  name = "tokenizer"

  def __init__(self, images: np.ndarray, *, batch_size: int, grid_images: int, out_dir):
    self.images, self.batch_size, self.grid_images = images, batch_size, grid_images
    self.out_dir = pathlib.Path(out_dir) if out_dir is not None else None
    self._run = nnx.jit(lambda m, x: (m.encode_latent(x), m.encode_codes(x)))
    self._decode = nnx.jit(lambda m, z, ids: (to_uint8(m.decode_latent(z)),
                                              to_uint8(m.decode_codes(ids))))

  def run(self, model) -> Iterator[tuple[str, float]]:
    parts = []
    for start in range(0, len(self.images), self.batch_size):
      z, ids = self._run(model, self.images[start:start + self.batch_size])
      parts.append(jax.device_get((z, ids, *self._decode(model, z, ids))))
    z, ids, latent, code = (np.concatenate(p) for p in zip(*parts))
    usage, perplexity = code_usage(ids, model.codebook_size)
    yield "latent_psnr", psnr_uint8(latent, self.images)
    yield "code_psnr", psnr_uint8(code, self.images)
    yield "code_usage", usage
    yield "code_perplexity", perplexity
    z_mean, z_std = z.mean(axis=(0, 1, 2)), np.maximum(z.std(axis=(0, 1, 2)), 1e-6)
    yield "z_std", float(z_std.mean())
    if self.out_dir is not None and jax.process_index() == 0:
      k, grids = self.grid_images, self.out_dir / "eval"
      write_grid([self.images[:k], latent[:k], code[:k]],
                 grids / f"grid_{_next_index(grids, 'grid'):04d}.png")
      LatentStats(z_mean, z_std).write(self.out_dir, num_images=int(len(self.images)))


class RendererSamples:
  name = "renderer_samples"

  def __init__(self, frontend, sample_fn, batch: dict[str, np.ndarray], *, grid_images: int,
               out_dir):
    """`sample_fn(model, batch) -> latents` (the renderer's sampler at the preset's settings)."""
    self.frontend, self.sample_fn, self.batch = frontend, sample_fn, batch
    self.grid_images = grid_images
    self.out_dir = pathlib.Path(out_dir) if out_dir is not None else None
    self.reference = frontend.decode_latent(batch["latent"])

  def run(self, model) -> Iterator[tuple[str, float]]:
    z = self.sample_fn(model, self.batch)
    images = self.frontend.decode_latent(z)
    yield "psnr_vs_tokenizer", psnr_uint8(images, self.reference)
    yield "latent_mse", float(np.mean(np.square(z - self.batch["latent"])))
    if self.out_dir is not None and jax.process_index() == 0:
      k, grids = self.grid_images, self.out_dir / "eval"
      write_grid([self.reference[:k], images[:k]],
                 grids / f"renderer_grid_{_next_index(grids, 'renderer_grid'):04d}.png")
