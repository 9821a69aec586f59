"""The written plan: a scene's layout as tokens of the one vocabulary.

    BOL  label BOX x0 y0 x1 y1  label BOX x0 y0 x1 y1 ...  EOL

Each object is a label in text ids (the grounded phrase, e.g. "large red
circle") followed by BOX and its bounding box as four coordinate tokens, the
corners quantised to `bins` per image side (Pix2Seq / Kosmos-2 style). x1 and
y1 name the bin of the box's last pixel, so x1 >= x0 and y1 >= y0 always.
Real records carry a layout only when they ship labelled boxes (grounded
captions: `"boxes": [{"label": str, "box": [x0, y0, x1, y1]}]`, corners as
fractions of the image side); the shapes world writes one for every scene.

A layout is a list of `LayoutObject`s; `layout_ids` and `parse_layout` are
exact inverses on the quantised boxes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from unified_mm.data.vocab import Vocab

# An object's label: a few words; longer labels are a malformed plan.
MAX_LABEL_TOKENS = 8
# Objects a sampled plan may hold (the renderer presets' `layout_len`; 25 fit a 64x64 image).
MAX_OBJECTS = 24


@dataclasses.dataclass(frozen=True)
class LayoutObject:
  label: str
  box: tuple[int, int, int, int]  # bins: x0, y0, x1, y1 (x1, y1 inclusive)

  def pixel_box(self, bins: int, resolution: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) in pixels, x1/y1 exclusive: the span of the named bins."""
    s = resolution / bins
    x0, y0, x1, y1 = self.box
    return x0 * s, y0 * s, (x1 + 1) * s, (y1 + 1) * s

  def unit_box(self, bins: int) -> tuple[float, float, float, float]:
    """The box as fractions of the image side, [0, 1]."""
    return self.pixel_box(bins, 1)


def quantise_box(box: Sequence[float], bins: int) -> tuple[int, int, int, int]:
  """A box (x0, y0, x1, y1) in fractions of the image side, x1/y1 exclusive -> corner bins."""
  x0, y0, x1, y1 = (float(v) for v in box)
  if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
    raise ValueError(f"box {tuple(box)} is empty or outside [0, 1]")
  # The last pixel's bin: a hair inside x1, so a box ending on a bin edge stays in the bin before.
  q = lambda v: int(np.clip(np.floor(v * bins), 0, bins - 1))
  return q(x0), q(y0), q(x1 * (1 - 1e-6)), q(y1 * (1 - 1e-6))


def objects_from_boxes(boxes: Sequence[dict[str, Any]], bins: int) -> list[LayoutObject]:
  """Record boxes [{"label": str, "box": [x0, y0, x1, y1] as fractions}] -> layout objects."""
  return [LayoutObject(str(b["label"]).strip(), quantise_box(b["box"], bins)) for b in boxes]


def layout_ids(vocab: Vocab, tokenizer, objects: Sequence[LayoutObject]) -> np.ndarray:
  """The layout's ids, BOL ... EOL."""
  if not vocab.layout_bins:
    raise ValueError("the vocabulary has no coordinate tokens (data.layout_bins=0)")
  c = vocab.coord_offset
  ids = [vocab.bol]
  for o in objects:
    label = tokenizer.encode(o.label)
    if not 0 < len(label) <= MAX_LABEL_TOKENS:
      raise ValueError(f"label {o.label!r} is {len(label)} tokens (1..{MAX_LABEL_TOKENS})")
    if not all(0 <= v < vocab.layout_bins for v in o.box):
      raise ValueError(f"box {o.box} outside {vocab.layout_bins} bins")
    ids += [*label.tolist(), vocab.box, *(c + v for v in o.box)]
  return np.asarray(ids + [vocab.eol], np.int32)


def parse_layout(vocab: Vocab, tokenizer, ids: Sequence[int]) -> list[LayoutObject]:
  """ids from BOL (optional) to EOL -> objects. Raises ValueError when malformed."""
  ids = [int(i) for i in ids]
  if ids and ids[0] == vocab.bol:
    ids = ids[1:]
  lo, hi = vocab.coord_range
  objects, i = [], 0
  while True:
    if i >= len(ids):
      raise ValueError("layout not closed by EOL")
    if ids[i] == vocab.eol:
      return objects
    j = i
    while j < len(ids) and ids[j] < vocab.text_size:
      j += 1
    if j == i or j - i > MAX_LABEL_TOKENS:
      raise ValueError(f"object {len(objects)}: label of {j - i} text tokens")
    if j + 5 > len(ids) or ids[j] != vocab.box:
      raise ValueError(f"object {len(objects)}: label not followed by BOX and 4 coordinates")
    coords = ids[j + 1:j + 5]
    if not all(lo <= v < hi for v in coords):
      raise ValueError(f"object {len(objects)}: {coords} are not coordinate tokens")
    x0, y0, x1, y1 = (v - lo for v in coords)
    if x1 < x0 or y1 < y0:
      raise ValueError(f"object {len(objects)}: box ({x0}, {y0}, {x1}, {y1}) is inverted")
    objects.append(LayoutObject(tokenizer.decode(ids[i:j]).strip(), (x0, y0, x1, y1)))
    i = j + 5


def layout_text(objects: Sequence[LayoutObject]) -> str:
  """A readable plan, one object per line (what `umm generate --show-plan` prints)."""
  return "\n".join(f"{o.label:<24} box {o.box}" for o in objects) or "(empty layout)"
