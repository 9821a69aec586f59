"""Image metrics shared by the tokenizer and renderer evaluators (uint8 RGB batches)."""

from __future__ import annotations

import numpy as np

from unified_mm.data.shapes.analyzer import UNSURE, analyze, nearest_palette
from unified_mm.data.shapes.scorer import multiset_match

# RGB distance within which a pixel counts as a palette colour (or the background);
# the closest two palette colours are 127 apart, so blends of two land outside.
PALETTE_TOLERANCE = 24.0


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  """[N] PSNR in dB between uint8 image batches [N, H, W, C] (capped at 100 dB)."""
  mse = np.mean(np.square(a.astype(np.float64) - b.astype(np.float64)), axis=(1, 2, 3))
  return 10.0 * np.log10(255.0**2 / np.maximum(mse, 255.0**2 * 1e-10))


def palette_share(images: np.ndarray, tolerance: float = PALETTE_TOLERANCE) -> float:
  """Share of pixels within `tolerance` of a palette colour or the background:
  1.0 on clean renders (flat colours, no anti-aliasing); blur and ringing lower it."""
  pixels = np.asarray(images, np.float32).reshape(-1, 3)
  return float(np.mean(nearest_palette(pixels, tolerance) != UNSURE))


def analyzer_roundtrip(images: np.ndarray, scenes) -> float:
  """Share of images whose (kind, colour) multiset, read back by the shapes
  analyzer, is their scene's (zip: extra images or scenes are ignored)."""
  return float(np.mean([multiset_match(analyze(im), s) for im, s in zip(images, scenes)]))


def image_grid(rows: list[np.ndarray]) -> np.ndarray:
  """Rows of [N, H, W, 3] uint8 -> one [R*(H+2), N*(W+2), 3] image with 2 px gaps."""
  n, h, w, _ = rows[0].shape
  grid = np.full((len(rows) * (h + 2), n * (w + 2), 3), 255, np.uint8)
  for r, images in enumerate(rows):
    for i, im in enumerate(images):
      grid[r * (h + 2):r * (h + 2) + h, i * (w + 2):i * (w + 2) + w] = im
  return grid
