"""A scene's grounded boxes: the layout the transformer learns to write before drawing.

Objects the caption mentions come first, in the caption's order (a planner
reading "a red star left of a blue circle" writes the star, then the circle,
placing the second relative to the first); the rest follow in raster order
(top to bottom, then left to right). Each label names the object fully
("large red star"), so the plan pins down what the caption left open.
"""

from __future__ import annotations

from typing import Any

from unified_mm.data.shapes import masks, vocab
from unified_mm.data.shapes.scene import Obj, Scene
from unified_mm.data.shapes.spec import PromptSpec


def label(obj: Obj) -> str:
  return f"{obj.size} {obj.colour} {obj.kind}"


def parse_label(text: str) -> tuple[str, str, str] | None:
  """(kind, colour, size) of a label `label` writes; None for anything else."""
  words = text.split()
  if len(words) != 3 or words[0] not in vocab.SIZES or words[1] not in vocab.COLOURS \
      or words[2] not in vocab.KINDS:
    return None
  return words[2], words[1], words[0]


def label_sides(bins: int, resolution: int) -> list[tuple[str, str, int, int]]:
  """(size word, kind word, w, h) per label: the bins a planned box needs to hold
  the object its label names, drawn at its size."""
  px = lambda v: -(-v * bins // resolution)  # pixels -> bins, rounded up
  out = []
  for size in vocab.SIZES:
    for kind in vocab.KINDS:
      h, w = masks.mask(kind, vocab.size_px(size, resolution)).shape
      out.append((size, kind, px(w), px(h)))
  return out


def mention_order(scene: Scene, spec: PromptSpec | None) -> list[Obj]:
  """The scene's objects, those the spec mentions first (in its item order)."""
  rest = sorted(scene.objects, key=lambda o: (o.cy, o.cx))
  first: list[Obj] = []
  for item in (spec.items if spec is not None else ()):
    matches = [o for o in rest if item.matches(o.kind, o.colour, o.size)]
    for o in matches[:item.count]:
      first.append(o)
      rest.remove(o)
  return first + rest


def scene_boxes(scene: Scene, spec: PromptSpec | None = None) -> list[dict[str, Any]]:
  """[{"label", "box": [x0, y0, x1, y1] as fractions of the side, x1/y1 exclusive}],
  mentioned objects first."""
  r = float(scene.resolution)
  return [{"label": label(o), "box": [v / r for v in o.box]} for o in mention_order(scene, spec)]
