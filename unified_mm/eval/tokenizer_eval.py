"""Evaluator of the image tokenizer on held-out shapes scenes.

Metrics (yielded as eval/tokenizer/<name>):
  latent_psnr, code_psnr   mean per-image PSNR (dB) of the uint8-rounded reconstructions
  latent_palette_share,    share of pixels within PALETTE_TOLERANCE of a palette colour
  code_palette_share       or the background (crispness: 1.0 on clean renders)
  code_usage               share of the codebook's ids used at least once on the set
  code_perplexity          exp(entropy) of the id histogram (1000 = perfectly uniform)
  latent_roundtrip,        share of scenes whose (kind, colour) multiset, as read back by
  code_roundtrip           the shapes analyzer, survives encode -> decode
  z_std                    mean per-channel std of the continuous latent

Each run also writes, when given an `out_dir`: `eval/grid_<n>.png` (rows:
original | latent reconstruction | code preview) and `latent_stats.json` (the
latent's per-channel mean and std, which `loader.load_tokenizer` returns for
the renderer to normalise z).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from unified_mm.eval.image_metrics import analyzer_roundtrip, image_grid, palette_share, psnr_uint8
from unified_mm.models.image_tokenizer.layers import to_uint8
from unified_mm.models.image_tokenizer.loader import LatentStats


def code_usage(ids: np.ndarray, codebook_size: int) -> tuple[float, float]:
  """(share of codes used, perplexity) of an id array of any shape."""
  counts = np.bincount(ids.reshape(-1), minlength=codebook_size).astype(np.float64)
  p = counts / counts.sum()
  entropy = -np.sum(p[p > 0] * np.log(p[p > 0]))
  return float((counts > 0).mean()), float(np.exp(entropy))


def _reconstruct(model, images):
  """Both paths through the public API (what the renderer and the AR stage call)."""
  z = model.encode_latent(images)
  ids = model.encode_codes(images)
  return z, ids, to_uint8(model.decode_latent(z)), to_uint8(model.decode_codes(ids))


class TokenizerEvaluator:
  name = "tokenizer"

  def __init__(self, *, seed: int, num_scenes: int, resolution: int, max_objects: int,
               batch_size: int, analyze_scenes: int | None = None, grid_images: int = 8,
               out_dir: str | pathlib.Path | None = None, align: int = 0):
    from unified_mm.tasks.tokenizer import render_scenes
    # `align`: held-out scenes laid out as the training ones (data.cell_align).
    self.scenes, self.images = render_scenes(seed, range(num_scenes), resolution, 1, max_objects,
                                             align)
    self.batch_size = batch_size
    self.analyze_scenes = num_scenes if analyze_scenes is None else min(analyze_scenes, num_scenes)
    self.grid_images = grid_images
    self.out_dir = pathlib.Path(out_dir) if out_dir is not None else None
    self._reconstruct = nnx.jit(_reconstruct)
    self.runs = 0

  def reconstruct(self, model) -> tuple[np.ndarray, ...]:
    """(z, ids, latent recon, code recon) for all held-out images, as numpy."""
    parts = []
    for start in range(0, len(self.images), self.batch_size):
      batch = jnp.asarray(self.images[start:start + self.batch_size])
      parts.append(jax.device_get(self._reconstruct(model, batch)))
    return tuple(np.concatenate(p) for p in zip(*parts))

  def roundtrip(self, recon: np.ndarray) -> float:
    n = self.analyze_scenes
    return analyzer_roundtrip(recon[:n], self.scenes[:n])

  def run(self, model) -> Iterator[tuple[str, float]]:
    z, ids, latent, code = self.reconstruct(model)
    z_mean, z_std = z.mean(axis=(0, 1, 2)), z.std(axis=(0, 1, 2))  # [Cz]
    usage, perplexity = code_usage(ids, model.codebook_size)
    yield "latent_psnr", float(psnr_uint8(latent, self.images).mean())
    yield "code_psnr", float(psnr_uint8(code, self.images).mean())
    yield "latent_palette_share", palette_share(latent)
    yield "code_palette_share", palette_share(code)
    yield "code_usage", usage
    yield "code_perplexity", perplexity
    yield "latent_roundtrip", self.roundtrip(latent)
    yield "code_roundtrip", self.roundtrip(code)
    yield "z_std", float(z_std.mean())
    if self.out_dir is not None and jax.process_index() == 0:
      self._write(latent, code, z_mean, z_std)
    self.runs += 1

  def _write(self, latent, code, z_mean, z_std) -> None:
    k = self.grid_images
    grids = self.out_dir / "eval"
    grids.mkdir(parents=True, exist_ok=True)
    index = len(list(grids.glob("grid_*.png")))  # continues the numbering after a resume
    Image.fromarray(image_grid([self.images[:k], latent[:k], code[:k]])).save(
        grids / f"grid_{index:04d}.png")
    LatentStats(z_mean, z_std).write(self.out_dir, num_images=int(len(self.images)))
