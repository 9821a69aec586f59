"""Scene graph -> pixels: flat palette colours, no anti-aliasing.

The analyzer snaps pixels to exact palette values, so nothing here may blend
colours (no anti-aliasing, no blur, no JPEG).
"""

from __future__ import annotations

import numpy as np

from unified_mm.data.shapes import masks, vocab
from unified_mm.data.shapes.scene import Scene


def _drawn(scene: Scene):
  """(object, its box's (rows, columns) slices, its [h, w] mask), in drawing order:
  a later object covers an earlier one."""
  r = scene.resolution
  for obj in scene.objects:
    x0, y0, x1, y1 = obj.box
    m = masks.mask(obj.kind, vocab.size_px(obj.size, r))
    if m.shape != (y1 - y0, x1 - x0):
      raise ValueError(f"box {obj.box} does not match a {obj.size} {obj.kind} at {r}px")
    yield obj, (slice(y0, y1), slice(x0, x1)), m


def render(scene: Scene) -> np.ndarray:
  """[H, W, 3] uint8 image of `scene`."""
  r = scene.resolution
  image = np.empty((r, r, 3), dtype=np.uint8)
  image[...] = scene.background
  for obj, box, m in _drawn(scene):
    image[box][m] = vocab.COLOURS[obj.colour]
  return image


def render_kinds(scene: Scene) -> np.ndarray:
  """[H, W] int32 label map: 0 for background, 1 + the index in `vocab.KINDS` of the
  kind drawn on top at each pixel (the tokenizer's semantic target)."""
  r = scene.resolution
  labels = np.zeros((r, r), dtype=np.int32)
  for obj, box, m in _drawn(scene):
    labels[box][m] = 1 + vocab.KINDS.index(obj.kind)
  return labels


def cell_kinds(scene: Scene, cell: int) -> np.ndarray:
  """[H/cell, W/cell] int32: per `cell` x `cell` cell the label (`render_kinds`)
  of the most pixels among its object pixels, 0 where it has none. A cell
  touched by an object's tip carries that object's kind: every code that draws
  part of a shape is asked to say which shape."""
  labels = render_kinds(scene)
  h = labels.shape[0] // cell
  blocks = labels.reshape(h, cell, h, cell).transpose(0, 2, 1, 3).reshape(h, h, cell * cell)
  counts = (blocks[..., None] == np.arange(1, 1 + len(vocab.KINDS))).sum(2)  # [h, h, K]
  return np.where(counts.any(-1), 1 + counts.argmax(-1), 0).astype(np.int32)


def render_batch(scenes: list[Scene]) -> np.ndarray:
  """[B, H, W, 3] uint8; all scenes must share one resolution."""
  return np.stack([render(s) for s in scenes])
