"""Image -> scene graph, by colour segmentation and silhouette matching.

Deterministic and weight-free, so it can grade generated images:

1. every pixel snaps to the nearest palette colour, or to background when it is
   farther than `colour_threshold` from all of them (blurred edges and noise);
2. each colour's 8-connected components smaller than `min_area` are dropped;
3. each component's kind is the silhouette whose expected coverage, stretched to
   the component's bounding box, differs least from the component's pixels,
   plus a penalty for a box whose aspect ratio does not fit the kind.
   Template matching is used instead of hand-picked features (fill ratio,
   corner counts) because it separates all kinds with one rule and degrades
   gracefully when a generator draws a slightly wrong outline.

Measured on clean renders (tests/data/shapes/test_shapes_analyzer.py): kinds,
colours, sizes and centres exact on 100% of 1,000 fresh 64x64 scenes with up
to 8 objects (the bar is 99.5%). A lone shape is recognised at every width
from 5 to 82 px except 6 px, where a star and a diamond rasterise to blobs.
Grade generated images at 64x64 or more, where the smallest default size is
10 px: smaller shapes are too few pixels for a generator to draw recognisably.
Degraded renders: pixel noise of sigma 20, or sigma 10 plus a 0.6 px Gaussian
blur, still give the exact (kind, colour) multiset on >= 98% of scenes; a
1 px blur rounds 10 px diamonds and stars into circles.

Input: [H, W, 3] (or RGBA) with values in 0..255, usually uint8.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage

from unified_mm.data.shapes import masks, vocab
from unified_mm.data.shapes.scene import Obj, Scene

# Half the smallest distance between two palette colours (127): a pixel within
# this distance of a colour can only be that colour.
COLOUR_THRESHOLD = 60.0
# Weight of the aspect-ratio mismatch (in log units) against the mean coverage
# error; it is what separates a semicircle from a squashed circle.
_ASPECT_WEIGHT = 0.3
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


# Snap codes besides palette indices.
_BACKGROUND = -1  # within the threshold of the background colour
UNSURE = -2  # within the threshold of no colour: noise, or a blend at an edge


def nearest_palette(pixels: np.ndarray, threshold: float) -> np.ndarray:
  """[N] int: palette index of each [N, 3] pixel, or _BACKGROUND, or UNSURE."""
  palette = vocab.palette_array().astype(np.float32)  # [P + 1, 3], background last
  d2 = ((pixels * pixels).sum(1)[:, None] - 2 * pixels @ palette.T
        + (palette * palette).sum(1))  # [N, P + 1]
  nearest = d2.argmin(1)
  nearest = np.where(nearest == len(palette) - 1, _BACKGROUND, nearest)
  return np.where(d2.min(1) > threshold**2, UNSURE, nearest)


@functools.lru_cache(maxsize=4)
def _colour_table(threshold: float) -> np.ndarray:
  """[64**3] int8: the snap code of every colour quantised to 6 bits per channel.

  A table lookup is ~40x faster than distances per pixel; quantising moves a
  pixel by at most 2.6 units, far less than the gaps between colours.
  """
  centres = np.arange(64, dtype=np.float32) * 4 + 1.5
  grid = np.stack(np.meshgrid(centres, centres, centres, indexing="ij"), -1)  # [64, 64, 64, 3]
  return nearest_palette(grid.reshape(-1, 3), threshold).astype(np.int8)


def _snap_codes(image: np.ndarray, threshold: float) -> np.ndarray:
  q = np.clip(np.asarray(image)[..., :3], 0, 255).astype(np.int32) >> 2  # [H, W, 3], 6 bits
  return _colour_table(float(threshold))[(q[..., 0] << 12) | (q[..., 1] << 6) | q[..., 2]]


def snap_colours(image: np.ndarray, threshold: float = COLOUR_THRESHOLD) -> np.ndarray:
  """[H, W] int8: palette index per pixel (COLOUR_NAMES order), -1 for background."""
  return np.maximum(_snap_codes(image, threshold), _BACKGROUND)


def _claim_edges(image: np.ndarray, codes: np.ndarray, regions: dict[int, np.ndarray]) -> None:
  """Gives each unsure pixel to the adjacent colour it is closer to than to the
  background, if any: a blurred edge then splits where coverage is one half,
  the renderer's own rule."""
  ys, xs = np.nonzero(codes == UNSURE)  # [N] each
  padded = np.pad(codes, 1, constant_values=_BACKGROUND)  # [H + 2, W + 2]
  neighbours = np.stack([padded[ys + 1 + dy, xs + 1 + dx]
                         for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx], 1)  # [N, 8]
  palette = vocab.palette_array().astype(np.float32)  # [P + 1, 3], background last
  num_colours = len(palette) - 1
  d2 = ((image[ys, xs, :3].astype(np.float32)[:, None] - palette) ** 2).sum(-1)  # [N, P + 1]
  adjacent = (neighbours[:, :, None] == np.arange(num_colours)).any(1)  # [N, P]
  d2_colour = np.where(adjacent, d2[:, :num_colours], np.inf)
  best = d2_colour.argmin(1)
  claimed = d2_colour[np.arange(len(ys)), best] < d2[:, num_colours]
  for index, region in regions.items():
    take = claimed & (best == index)
    region[ys[take], xs[take]] = True


def colour_regions(image: np.ndarray, threshold: float = COLOUR_THRESHOLD) -> dict[int, np.ndarray]:
  """{palette index: [H, W] bool} for every colour present: the pixels within
  the threshold of the colour, plus the edge pixels `_claim_edges` gives it."""
  image = np.asarray(image)
  codes = _snap_codes(image, threshold)  # [H, W]
  regions = {int(i): codes == i for i in np.unique(codes[codes >= 0])}
  if regions and (codes == UNSURE).any():
    _claim_edges(image, codes, regions)
  return regions


@functools.lru_cache(maxsize=8192)
def template(kind: str, h: int, w: int) -> np.ndarray:
  """[h, w] float32: expected coverage of a `kind` whose drawn box is h x w.

  When some nominal width draws exactly an h x w box, its own coverage is used,
  so clean renders are matched pixel for pixel at every size; otherwise the
  silhouette is stretched to the box (a generator's odd proportions).
  """
  nominal = w if masks.aspect(kind) >= 1 else max(h, w)
  for width in range(max(vocab.MIN_SIZE_PX, nominal - 1), nominal + 4):
    cov = masks.tight_coverage(kind, width)
    if cov.shape == (h, w):
      return cov
  return masks.coverage(kind, h, w)


@functools.lru_cache(maxsize=8192)
def _templates(kinds: tuple[str, ...], h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
  """([K, h, w] templates, [K] log aspect ratios) for a component's box."""
  stack = np.stack([template(k, h, w) for k in kinds])
  return stack, np.log([masks.aspect(k) for k in kinds])


def classify(component: np.ndarray, kinds: tuple[str, ...] = vocab.KINDS) -> tuple[str, float]:
  """(kind, error) for a [h, w] bool mask cropped to its bounding box."""
  h, w = component.shape
  stack, log_aspects = _templates(tuple(kinds), h, w)  # [K, h, w], [K]
  errors = np.abs(component.astype(np.float32) - stack).mean(axis=(1, 2))  # [K]
  errors += _ASPECT_WEIGHT * np.abs(np.log(h / w) - log_aspects)
  best = int(errors.argmin())
  return kinds[best], float(errors[best])


def estimate_size(kind: str, h: int, w: int, resolution: int) -> str:
  """The size name whose rendered box is closest to an observed (h, w)."""
  def mismatch(size: str) -> int:
    mh, mw = masks.mask(kind, vocab.size_px(size, resolution)).shape
    return abs(mh - h) + abs(mw - w)
  return min(vocab.SIZE_NAMES, key=mismatch)


def default_min_area(resolution: int) -> int:
  """A tenth of the smallest object's box: keeps objects, drops speckle."""
  return max(4, int(0.1 * vocab.size_px(vocab.SIZE_NAMES[0], resolution) ** 2))


def analyze(image: np.ndarray, *, colour_threshold: float = COLOUR_THRESHOLD,
            min_area: int | None = None, kinds: tuple[str, ...] = vocab.KINDS) -> Scene:
  """Reads an [H, W, 3] image back into a Scene (objects sorted top-left first)."""
  image = np.asarray(image)
  resolution = min(image.shape[:2])
  min_area = default_min_area(resolution) if min_area is None else min_area
  objects = []
  for colour_index, region in colour_regions(image, colour_threshold).items():
    components, _ = ndimage.label(region, structure=_EIGHT_CONNECTED)
    for i, slc in enumerate(ndimage.find_objects(components), start=1):
      crop = components[slc] == i  # [h, w]
      if crop.sum() < min_area:
        continue
      kind, _ = classify(crop, kinds)
      y, x = slc
      h, w = crop.shape
      size = estimate_size(kind, h, w, resolution)
      objects.append(Obj(kind, vocab.COLOUR_NAMES[colour_index], size,
                         (x.start + x.stop) / 2, (y.start + y.stop) / 2,
                         (x.start, y.start, x.stop, y.stop)))
  objects.sort(key=lambda o: (o.box[1], o.box[0]))
  return Scene(tuple(objects), resolution)
