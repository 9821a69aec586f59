"""A second image -> scene reader, built unlike analyzer.py, to check its verdicts.

The benchmark's figures rest on analyzer.py, which snaps pixels to the palette
and matches each component against the world's silhouettes stretched to its
box. A drawer can learn what one reader forgives; this reader shares none of
its steps (only the world's speck size), so a verdict both give is not an
artefact of either:

1. foreground is every pixel farther from the background grey than half the
   gap to the nearest palette colour; no palette snapping;
2. its 8-connected components are split by colour only where a second colour
   holds an object's worth of pixels (touching objects of two colours);
3. an object's colour is the palette colour nearest its median pixel;
4. its kind is a vote of the nearest neighbours in a bank of scale-free shape
   features (Hu moments, fill and solidity, row and column profiles) of lone
   shapes drawn at random widths and sub-pixel offsets, blurred and noised;
   no template is compared to the pixels;
5. its size is the size whose nominal width is nearest the one its box implies.

Measured on fresh clean renders and blurred, noisy ones in
tests/data/shapes/test_shapes_second_reader.py.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage, spatial

from unified_mm.data.shapes import analyzer, masks, vocab
from unified_mm.data.shapes.scene import Obj, Scene

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_PALETTE = vocab.palette_array()[:-1].astype(np.float32)  # [P, 3], no background
# Half the smallest distance from the background grey to a palette colour.
_FOREGROUND_DISTANCE = 0.5 * float(np.sqrt(
    ((vocab.palette_array()[:-1] - vocab.palette_array()[-1]) ** 2).sum(1)).min())
_BANK_PER_KIND = 160
_BANK_SEED = 0
_NEIGHBOURS = 7
_PROFILE_BANDS = 4
_SUPERSAMPLE = 6


def _profile(fill: np.ndarray) -> np.ndarray:
  """[_PROFILE_BANDS]: a row (or column) fill profile sampled at fixed fractions
  of the box, so boxes of every height compare."""
  at = (np.arange(_PROFILE_BANDS) + 0.5) / _PROFILE_BANDS
  return np.interp(at, (np.arange(len(fill)) + 0.5) / len(fill), fill)


def _shape_features(component: np.ndarray) -> np.ndarray:
  """[F] float32: scale-free features of a [h, w] bool component cropped to its box."""
  h, w = component.shape
  area = float(component.sum())
  ys, xs = np.nonzero(component)
  cy, cx = (ys.mean() + 0.5) / h, (xs.mean() + 0.5) / w
  # Hu's moment invariants from normalised central moments (scale free).
  dy, dx = ys - ys.mean(), xs - xs.mean()
  def eta(p: int, q: int) -> float:
    return float((dx**p * dy**q).sum()) / area ** (1 + (p + q) / 2)
  n20, n02, n11 = eta(2, 0), eta(0, 2), eta(1, 1)
  n30, n03, n21, n12 = eta(3, 0), eta(0, 3), eta(2, 1), eta(1, 2)
  hu = np.array([n20 + n02, (n20 - n02) ** 2 + 4 * n11**2,
                 (n30 - 3 * n12) ** 2 + (3 * n21 - n03) ** 2,
                 (n30 + n12) ** 2 + (n21 + n03) ** 2])
  hu = np.sign(hu) * np.log10(np.abs(hu) + 1e-9)
  # Solidity: area against the convex hull of the pixels' corners.
  corners = np.concatenate([np.stack([xs + a, ys + b], 1) for a in (0, 1) for b in (0, 1)])
  hull = spatial.ConvexHull(corners).volume if area >= 3 else area
  rows, cols = _profile(component.mean(1)), _profile(component.mean(0))
  return np.concatenate([[np.log(h / w), area / (h * w), area / hull, cy, cx],
                         hu, rows, cols]).astype(np.float32)


def _drawn_shape(kind: str, width: float, rng: np.random.Generator) -> np.ndarray:
  """[h, w] bool: `kind` at a fractional width and offset, blurred, noised and
  thresholded the way a generator's edge lands, cropped to its box."""
  height = width * masks.aspect(kind)
  side = int(np.ceil(max(width, height))) + 4
  x0, y0 = rng.uniform(1.5, 2.5, size=2)
  cov = masks.coverage_at(kind, (x0, y0, width, height), (side, side), _SUPERSAMPLE)
  blur = rng.choice([0.0, 0.0, rng.uniform(0.3, 0.9)])
  if blur:
    cov = ndimage.gaussian_filter(cov, blur)
  cov = cov + rng.normal(0.0, rng.uniform(0.0, 0.08), cov.shape)
  drawn = cov >= rng.uniform(0.35, 0.65)
  labels, n = ndimage.label(drawn, structure=_EIGHT_CONNECTED)
  if n > 1:  # keep the shape, drop specks of noise
    drawn = labels == 1 + int(np.argmax(ndimage.sum(drawn, labels, range(1, n + 1))))
  rows, cols = np.flatnonzero(drawn.any(1)), np.flatnonzero(drawn.any(0))
  return drawn[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


@functools.lru_cache(maxsize=1)
def _bank() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """(features [N, F] standardised, kinds [N], mean [F], std [F])."""
  rng = np.random.default_rng(_BANK_SEED)
  features, kinds = [], []
  for k, kind in enumerate(vocab.KINDS):
    for _ in range(_BANK_PER_KIND):
      features.append(_shape_features(_drawn_shape(kind, rng.uniform(8.0, 26.0), rng)))
      kinds.append(k)
  features = np.stack(features)
  mean, std = features.mean(0), features.std(0) + 1e-6
  return (features - mean) / std, np.array(kinds), mean, std


def classify(component: np.ndarray) -> str:
  """The kind of a [h, w] bool component cropped to its box."""
  bank, kinds, mean, std = _bank()
  query = (_shape_features(component) - mean) / std
  nearest = np.argpartition(((bank - query) ** 2).sum(1), _NEIGHBOURS)[:_NEIGHBOURS]
  return vocab.KINDS[int(np.bincount(kinds[nearest], minlength=len(vocab.KINDS)).argmax())]


def _size(kind: str, h: int, w: int, resolution: int) -> str:
  """The size whose nominal width is nearest the one the box implies (a semicircle's
  box is half as tall as wide); the area would follow a soft edge's spread."""
  width = np.sqrt(w * h / masks.aspect(kind))
  return min(vocab.SIZE_NAMES, key=lambda s: abs(vocab.size_px(s, resolution) - width))


def _object_masks(crop_pixels: np.ndarray, mask: np.ndarray, min_area: int):
  """A bool mask per object in one foreground component."""
  d2 = ((crop_pixels[:, :, None, :] - _PALETTE) ** 2).sum(-1)  # [h, w, P]
  votes = np.bincount(d2.argmin(-1)[mask], minlength=len(_PALETTE))
  colours = np.flatnonzero(votes >= min_area)
  if len(colours) <= 1:
    yield mask
    return
  # Touching objects: every pixel joins the nearest of the colours held in bulk.
  owner = colours[d2[..., colours].argmin(-1)]  # [h, w]
  for c in colours:
    labels, n = ndimage.label(mask & (owner == c), structure=_EIGHT_CONNECTED)
    for i in range(1, n + 1):
      if (labels == i).sum() >= min_area:
        yield labels == i


def read(image: np.ndarray, *, min_area: int | None = None) -> Scene:
  """Reads an [H, W, 3] image (0..255) into a Scene, objects top-left first."""
  pixels = np.asarray(image)[..., :3].astype(np.float32)
  resolution = min(pixels.shape[:2])
  # The world's speck size is the one rule the two readers share.
  min_area = analyzer.default_min_area(resolution) if min_area is None else min_area
  background = np.asarray(vocab.BACKGROUND, dtype=np.float32)
  foreground = np.sqrt(((pixels - background) ** 2).sum(-1)) > _FOREGROUND_DISTANCE
  components, _ = ndimage.label(foreground, structure=_EIGHT_CONNECTED)
  objects = []
  for i, (ys, xs) in enumerate(ndimage.find_objects(components), start=1):
    component = components[ys, xs] == i
    if component.sum() < min_area:
      continue
    for mask in _object_masks(pixels[ys, xs], component, min_area):
      rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
      crop = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
      median = np.median(pixels[ys, xs][mask], axis=0)
      colour = int(((_PALETTE - median) ** 2).sum(1).argmin())
      kind = classify(crop)
      x0, y0 = xs.start + cols[0], ys.start + rows[0]
      x1, y1 = xs.start + cols[-1] + 1, ys.start + rows[-1] + 1
      objects.append(Obj(kind, vocab.COLOUR_NAMES[colour], _size(kind, *crop.shape, resolution),
                         (x0 + x1) / 2, (y0 + y1) / 2, (int(x0), int(y0), int(x1), int(y1))))
  objects.sort(key=lambda o: (o.box[1], o.box[0]))
  return Scene(tuple(objects), resolution)
