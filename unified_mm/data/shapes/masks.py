"""Silhouettes of the shape kinds, rasterised without anti-aliasing.

Every kind is defined once, as an inside-test over the unit box [0, 1]^2
(x right, y down) that touches all four sides. The renderer and the analyzer
both rasterise from these definitions, so what the analyzer expects is exactly
what the renderer draws.
"""

from __future__ import annotations

import functools

import numpy as np

from unified_mm.data.shapes import vocab

# Supersampling per pixel side when estimating coverage: enough for the
# 0.5-coverage threshold to be stable on 10 px shapes, cheap because cached.
_SUPERSAMPLE = 4


def _inside_polygon(x: np.ndarray, y: np.ndarray, vertices: np.ndarray) -> np.ndarray:
  """Even-odd rule, vectorised over points; vertices [V, 2]."""
  inside = np.zeros(x.shape, dtype=bool)
  x0, y0 = vertices[:, 0], vertices[:, 1]
  x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
  for ax, ay, bx, by in zip(x0, y0, x1, y1):
    crosses = (ay > y) != (by > y)
    with np.errstate(divide="ignore", invalid="ignore"):
      x_at_y = ax + (y - ay) * (bx - ax) / (by - ay)
    inside ^= crosses & (x < x_at_y)
  return inside


def _fit_unit_box(vertices: np.ndarray) -> np.ndarray:
  """Stretches a polygon so its bounding box is exactly the unit box."""
  lo, hi = vertices.min(axis=0), vertices.max(axis=0)
  return (vertices - lo) / (hi - lo)


def _star_vertices(points: int = 5, inner: float = 0.42) -> np.ndarray:
  # Inner radius 0.42: fat enough for 2 px arms at 10 px, thin enough for points.
  angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
  radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
  return _fit_unit_box(np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1))


def _heart_vertices(n: int = 96) -> np.ndarray:
  t = np.linspace(0, 2 * np.pi, n, endpoint=False)
  x = 16 * np.sin(t) ** 3
  y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
  return _fit_unit_box(np.stack([x, y], axis=1))


_POLYGONS = {
    "triangle": np.array([[0.5, 0.0], [1.0, 1.0], [0.0, 1.0]]),
    "diamond": np.array([[0.5, 0.0], [1.0, 0.5], [0.5, 1.0], [0.0, 0.5]]),
    "star": _star_vertices(),
    "heart": _heart_vertices(),
}


def inside(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Whether points (x, y), in units of the kind's box, lie inside its silhouette;
  never outside the box, wherever the points are."""
  in_box = (x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)
  if kind == "circle":
    return in_box & ((x - 0.5) ** 2 + (y - 0.5) ** 2 <= 0.25)
  if kind == "square":
    return in_box
  if kind == "cross":
    # Arms one third thick: wide enough at 10 px, thin enough to leave corners.
    return in_box & ((np.abs(x - 0.5) <= 1 / 6) | (np.abs(y - 0.5) <= 1 / 6))
  if kind == "semicircle":
    # Flat side down; the box is twice as wide as it is tall.
    return in_box & ((2 * x - 1) ** 2 + (1 - y) ** 2 <= 1)
  if kind in _POLYGONS:
    return in_box & _inside_polygon(x, y, _POLYGONS[kind])
  raise ValueError(f"unknown kind {kind!r}; known: {vocab.KINDS}")


def aspect(kind: str) -> float:
  """Height / width of the nominal box of `kind`."""
  return 0.5 if kind == "semicircle" else 1.0


def coverage_at(kind: str, box: tuple[float, float, float, float], shape: tuple[int, int],
                supersample: int = _SUPERSAMPLE) -> np.ndarray:
  """[H, W] float32: fraction of each pixel of an H x W canvas that `kind` covers
  when its box is (x0, y0, width, height) px; fractional boxes allowed."""
  x0, y0, width, height = box
  (h, w), s = shape, supersample
  ys = (np.arange(h * s) + 0.5 - y0 * s) / (height * s)
  xs = (np.arange(w * s) + 0.5 - x0 * s) / (width * s)
  x, y = np.meshgrid(xs, ys)  # [h*s, w*s] each
  return inside(kind, x, y).astype(np.float32).reshape(h, s, w, s).mean(axis=(1, 3))


@functools.lru_cache(maxsize=8192)
def coverage(kind: str, h: int, w: int) -> np.ndarray:
  """[h, w] float32: fraction of each pixel the silhouette covers, box-filled."""
  cov = coverage_at(kind, (0, 0, w, h), (h, w))
  cov.setflags(write=False)
  return cov


@functools.lru_cache(maxsize=1024)
def tight_coverage(kind: str, width: int) -> np.ndarray:
  """[h, w] float32: coverage of a `width`-px nominal box, cropped to the pixels drawn.

  Pointed extremes (a star's tips, a triangle's apex) may cover less than half
  a pixel, so the drawn box can be a pixel smaller than the nominal one.
  """
  height = max(1, int(round(width * aspect(kind))))
  cov = coverage(kind, height, width)
  drawn = cov >= 0.5
  rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
  tight = cov[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].copy()
  tight.setflags(write=False)
  return tight


@functools.lru_cache(maxsize=1024)
def mask(kind: str, width: int) -> np.ndarray:
  """[h, w] bool: the rendered silhouette, cropped to its tight bounding box."""
  m = tight_coverage(kind, width) >= 0.5
  m.setflags(write=False)
  return m
