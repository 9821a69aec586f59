"""Fixed sin-cos embeddings: 2-D grid positions and diffusion time.

Latent patches and visual tokens share one 2-D position function over the
image's unit square, so a latent token and the visual token covering the same
pixels get the same position code even when their grids differ in size; that
alignment is what cross-attention latches onto first.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np


def _sincos_1d(pos: np.ndarray, dim: int, max_period: float) -> np.ndarray:
  """[P, dim] sin-cos code of positions `pos` [P] (dim even)."""
  half = dim // 2
  freqs = np.exp(-np.log(max_period) * np.arange(half) / half)  # [dim/2]
  angles = pos[:, None] * freqs[None, :]
  return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def sincos_2d(height: int, width: int, dim: int) -> np.ndarray:
  """[height * width, dim] position codes of a row-major grid over the unit square.

  Cell centres are measured in units of 1/16 of the image side, so grids of
  different resolution covering one image agree where their cells overlap.
  """
  if dim % 4:
    raise ValueError(f"sincos_2d: dim={dim} must be a multiple of 4")
  ys = (np.arange(height) + 0.5) / height * 16.0
  xs = (np.arange(width) + 0.5) / width * 16.0
  yy, xx = np.meshgrid(ys, xs, indexing="ij")  # [Hh, Ww]
  code_y = _sincos_1d(yy.reshape(-1), dim // 2, max_period=100.0)
  code_x = _sincos_1d(xx.reshape(-1), dim // 2, max_period=100.0)
  return np.concatenate([code_y, code_x], axis=1).astype(np.float32)


def timestep_embedding(t: jnp.ndarray, dim: int, scale: float = 1000.0) -> jnp.ndarray:
  """[..., dim] sin-cos code of flow times t in [0, 1] (scaled like DDPM steps)."""
  half = dim // 2
  freqs = jnp.exp(-jnp.log(10000.0) * jnp.arange(half, dtype=jnp.float32) / half)
  angles = (t.astype(jnp.float32) * scale)[..., None] * freqs
  return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
