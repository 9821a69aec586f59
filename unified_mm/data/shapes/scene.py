"""Scene graphs of the shapes world and their seeded sampler.

A scene is a set of flat shapes on a plain background. Objects never overlap
and keep a gap of `GAP` pixels between bounding boxes, so every object is its
own connected component and the analyzer can read the scene back exactly.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from unified_mm.data.shapes import masks, vocab

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), x1 and y1 exclusive

# Two free pixels between boxes: objects of one colour never merge, even after
# a generated image smears an edge by a pixel.
GAP = 2
# Keeps shapes off the image edge, where a generator's artefacts concentrate.
BORDER = 1
# Rejection-sampling candidates per object before falling back to a grid.
_TRIES = 64


@dataclasses.dataclass(frozen=True)
class Obj:
  kind: str
  colour: str
  size: str
  cx: float  # centre of the tight pixel box, in pixels
  cy: float
  box: Box

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self) | {"box": list(self.box)}

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> Obj:
    return cls(d["kind"], d["colour"], d["size"], float(d["cx"]), float(d["cy"]),
               tuple(int(v) for v in d["box"]))


@dataclasses.dataclass(frozen=True)
class Scene:
  objects: tuple[Obj, ...]
  resolution: int = 64
  background: tuple[int, int, int] = vocab.BACKGROUND

  def to_dict(self) -> dict[str, Any]:
    return {"resolution": self.resolution, "background": list(self.background),
            "objects": [o.to_dict() for o in self.objects]}

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> Scene:
    return cls(tuple(Obj.from_dict(o) for o in d["objects"]), int(d["resolution"]),
               tuple(int(v) for v in d.get("background", vocab.BACKGROUND)))

  def replace(self, objects: Sequence[Obj]) -> Scene:
    return dataclasses.replace(self, objects=tuple(objects))


def as_rng(rng_or_seed: np.random.Generator | int | Sequence[int]) -> np.random.Generator:
  if isinstance(rng_or_seed, np.random.Generator):
    return rng_or_seed
  return np.random.default_rng(rng_or_seed)


def make_obj(kind: str, colour: str, size: str, x0: int, y0: int, resolution: int) -> Obj:
  """An object whose tight box has its top-left corner at (x0, y0)."""
  h, w = masks.mask(kind, vocab.size_px(size, resolution)).shape
  return Obj(kind, colour, size, x0 + w / 2, y0 + h / 2, (x0, y0, x0 + w, y0 + h))


def moved(obj: Obj, dx: int, dy: int) -> Obj:
  x0, y0, x1, y1 = obj.box
  return dataclasses.replace(obj, cx=obj.cx + dx, cy=obj.cy + dy,
                             box=(x0 + dx, y0 + dy, x1 + dx, y1 + dy))


def box_is_free(box: Box, others: Sequence[Obj], resolution: int, gap: int = GAP) -> bool:
  """Whether `box` lies inside the image and at least `gap` px from all others."""
  x0, y0, x1, y1 = box
  if x0 < BORDER or y0 < BORDER or x1 > resolution - BORDER or y1 > resolution - BORDER:
    return False
  return not _collisions(np.array([[x0, y0]]), x1 - x0, y1 - y0, others, gap)[0]


def _collisions(xy: np.ndarray, w: int, h: int, others: Sequence[Obj], gap: int) -> np.ndarray:
  """[C] bool: whether each candidate top-left corner in xy [C, 2] hits an object."""
  if not others:
    return np.zeros(len(xy), dtype=bool)
  boxes = np.array([o.box for o in others])  # [M, 4]
  x0, y0 = xy[:, :1], xy[:, 1:]  # [C, 1]
  hit = ((x0 < boxes[:, 2] + gap) & (boxes[:, 0] < x0 + w + gap)
         & (y0 < boxes[:, 3] + gap) & (boxes[:, 1] < y0 + h + gap))  # [C, M]
  return hit.any(axis=1)


def place_one(rng: np.random.Generator, kind: str, colour: str, size: str,
              placed: Sequence[Obj], resolution: int, gap: int = GAP,
              align: int = 0) -> Obj | None:
  """One object at a random free spot, or None when no candidate spot is free.

  align > 0 puts the box's top-left corner on a lattice of that stride (from
  BORDER): on an image tokenizer's code cells, an object of one kind, colour
  and size then always meets the same codes.
  """
  h, w = masks.mask(kind, vocab.size_px(size, resolution)).shape
  hi_x, hi_y = resolution - BORDER - w, resolution - BORDER - h
  if hi_x < BORDER or hi_y < BORDER:
    return None
  # Stride 1 is every pixel: integers(0, n) + BORDER draws what integers(BORDER, BORDER + n) does.
  step = align or 1
  xy = BORDER + step * np.stack([rng.integers(0, (hi_x - BORDER) // step + 1, _TRIES),
                                 rng.integers(0, (hi_y - BORDER) // step + 1, _TRIES)],
                                axis=1)  # [C, 2]
  free = np.flatnonzero(~_collisions(xy, w, h, placed, gap))
  if not len(free):
    return None
  x0, y0 = xy[free[0]]
  return make_obj(kind, colour, size, int(x0), int(y0), resolution)


def _smaller_sizes(size: str) -> list[str]:
  """`size` then every smaller size, largest first."""
  return list(reversed(vocab.SIZE_NAMES[:vocab.SIZE_NAMES.index(size) + 1]))


def _place_on_grid(rng: np.random.Generator, attrs: Sequence[tuple[str, str, str]],
                   resolution: int, gap: int) -> tuple[Obj, ...]:
  """Crowded scenes: one object per random cell of a grid, shrunk to fit."""
  n = len(attrs)
  cols = int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / cols))
  xs = np.linspace(BORDER, resolution - BORDER + gap, cols + 1).astype(int)
  ys = np.linspace(BORDER, resolution - BORDER + gap, rows + 1).astype(int)
  cells = rng.permutation(rows * cols)[:n]
  objs = []
  for (kind, colour, size), cell in zip(attrs, cells):
    r, c = divmod(int(cell), cols)
    cell_w, cell_h = xs[c + 1] - xs[c] - gap, ys[r + 1] - ys[r] - gap
    for s in _smaller_sizes(size):
      h, w = masks.mask(kind, vocab.size_px(s, resolution)).shape
      if w <= cell_w and h <= cell_h:
        x0 = xs[c] + rng.integers(0, cell_w - w + 1)
        y0 = ys[r] + rng.integers(0, cell_h - h + 1)
        objs.append(make_obj(kind, colour, s, int(x0), int(y0), resolution))
        break
    else:
      raise ValueError(f"{n} objects do not fit in a {resolution}x{resolution} image")
  return tuple(objs)


def place_objects(rng: np.random.Generator, attrs: Sequence[tuple[str, str, str]],
                  resolution: int = 64, gap: int = GAP, align: int = 0) -> tuple[Obj, ...]:
  """Places (kind, colour, size) objects without overlap, in the given order.

  An object that finds no room is shrunk; when even the smallest size finds
  none, the whole scene is laid out on a jittered grid instead (unaligned).
  `align`: see `place_one`.
  """
  placed: list[Obj] = []
  for kind, colour, size in attrs:
    obj = None
    for s in _smaller_sizes(size):
      obj = place_one(rng, kind, colour, s, placed, resolution, gap, align)
      if obj is not None:
        break
    if obj is None:
      return _place_on_grid(rng, attrs, resolution, gap)
    placed.append(obj)
  return tuple(placed)


def sample_attrs(rng: np.random.Generator, n: int, kinds: Sequence[str] = vocab.KINDS,
                 colours: Sequence[str] = vocab.COLOUR_NAMES,
                 sizes: Sequence[str] = vocab.SIZE_NAMES,
                 size_probs: Sequence[float] | None = None) -> list[tuple[str, str, str]]:
  """n independent (kind, colour, size) triples."""
  k = rng.integers(0, len(kinds), n)
  c = rng.integers(0, len(colours), n)
  s = rng.choice(len(sizes), n, p=size_probs)
  return [(kinds[i], colours[j], sizes[m]) for i, j, m in zip(k, c, s)]


def sample_scene(rng_or_seed: np.random.Generator | int | Sequence[int], resolution: int = 64,
                 min_objects: int = 1, max_objects: int = 4, *, num_objects: int | None = None,
                 kinds: Sequence[str] = vocab.KINDS, colours: Sequence[str] = vocab.COLOUR_NAMES,
                 sizes: Sequence[str] = vocab.SIZE_NAMES,
                 size_probs: Sequence[float] | None = None, gap: int = GAP,
                 align: int = 0) -> Scene:
  """A random scene; the same generator state always gives the same scene.

  Kinds, colours and sizes are uniform and independent unless restricted.
  Resolutions 32-256 are supported; up to 20 objects fit at 128x128 (crowded
  scenes use smaller sizes than sampled, see `place_objects`).
  """
  rng = as_rng(rng_or_seed)
  n = num_objects if num_objects is not None else int(rng.integers(min_objects, max_objects + 1))
  attrs = sample_attrs(rng, n, kinds, colours, sizes, size_probs)
  return Scene(place_objects(rng, attrs, resolution, gap, align), resolution)


def scene_for_index(seed: int, index: int, **kwargs: Any) -> Scene:
  """Random access into an endless stream of scenes: example `index` of `seed`."""
  return sample_scene(np.random.default_rng([seed, index]), **kwargs)
