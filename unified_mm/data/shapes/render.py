"""Scene graph -> pixels: flat palette colours, no anti-aliasing.

The analyzer snaps pixels to exact palette values, so nothing here may blend
colours (no anti-aliasing, no blur, no JPEG).
"""

from __future__ import annotations

import numpy as np

from unified_mm.data.shapes import masks, vocab
from unified_mm.data.shapes.scene import Scene


def render(scene: Scene) -> np.ndarray:
  """[H, W, 3] uint8 image of `scene`."""
  r = scene.resolution
  image = np.empty((r, r, 3), dtype=np.uint8)
  image[...] = scene.background
  for obj in scene.objects:
    x0, y0, x1, y1 = obj.box
    m = masks.mask(obj.kind, vocab.size_px(obj.size, r))  # [h, w]
    if m.shape != (y1 - y0, x1 - x0):
      raise ValueError(f"box {obj.box} does not match a {obj.size} {obj.kind} at {r}px")
    image[y0:y1, x0:x1][m] = vocab.COLOURS[obj.colour]
  return image


def render_batch(scenes: list[Scene]) -> np.ndarray:
  """[B, H, W, 3] uint8; all scenes must share one resolution."""
  return np.stack([render(s) for s in scenes])
