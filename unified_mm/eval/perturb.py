"""Scenes that break a benchmark prompt on purpose: the negative controls of the
scorer, so a benchmark that scores 1.0 on reference scenes is known to be able
to score 0 as well.

    remove_asked(spec, scene)          # one asked object gone
    recolour_asked(spec, scene)        # an asked colour swapped to one not asked
    mirror(scene, "x")                 # left/right swapped (relations flip)
    count_off(spec, scene, +1, rng)    # one object of the counted kind more (or -1: less)

Each takes the prompt's reference scene (as `prompts.benchmark` makes it) and
returns a Scene that still renders (boxes keep the mask's shape), so the same
perturbation can be scored on the scene and on its render read back.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from unified_mm.data.shapes import vocab
from unified_mm.data.shapes.scene import Obj, Scene, place_one
from unified_mm.data.shapes.scorer import matching
from unified_mm.data.shapes.spec import PromptSpec


def remove_asked(spec: PromptSpec, scene: Scene, item_index: int = 0) -> Scene:
  """The scene without one object matching item `item_index`."""
  hits = matching(spec.items[item_index], scene.objects)
  if not hits:
    raise ValueError(f"no object in the scene matches {spec.items[item_index]}")
  return scene.replace([o for o in scene.objects if o is not hits[0]])


def unasked_colour(spec: PromptSpec, obj: Obj) -> str:
  """A colour to repaint `obj` with so that it matches no item: one no item
  asks for, or, when crowded binding prompts ask for all ten, one no item asks
  for with this kind (the swapped object is then still not what was asked)."""
  asked = {i.colour for i in spec.items}
  free = [c for c in vocab.COLOUR_NAMES if c not in asked]
  free = free or [c for c in vocab.COLOUR_NAMES if c != obj.colour
                  and not any(i.matches(obj.kind, c, obj.size) for i in spec.items)]
  if not free:
    raise ValueError(f"every colour of a {obj.kind} is asked for")
  return free[0]


def recolour_asked(spec: PromptSpec, scene: Scene) -> Scene:
  """The scene with the first object of the first colour-asking item repainted
  (see `unasked_colour`). Raises ValueError when the prompt asks no colour.

  Objects keep a 2 px gap, so a repainted object never merges with a neighbour
  of its new colour."""
  coloured = [i for i in spec.items if i.colour is not None]
  if not coloured:
    raise ValueError("the prompt asks for no colour")
  target = matching(coloured[0], scene.objects)[0]
  new = unasked_colour(spec, target)
  return scene.replace([dataclasses.replace(o, colour=new) if o is target else o
                        for o in scene.objects])


def _mirrored(obj: Obj, axis: str, resolution: int) -> Obj:
  # The box is reflected but keeps its width and height, so the unmirrored mask
  # still renders into it; only the centres matter to a relation.
  x0, y0, x1, y1 = obj.box
  r = resolution
  if axis == "x":
    return dataclasses.replace(obj, cx=r - obj.cx, box=(r - x1, y0, r - x0, y1))
  return dataclasses.replace(obj, cy=r - obj.cy, box=(x0, r - y1, x1, r - y0))


def mirror(scene: Scene, axis: str) -> Scene:
  """The scene reflected about the vertical ("x") or horizontal ("y") midline."""
  if axis not in ("x", "y"):
    raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
  return scene.replace([_mirrored(o, axis, scene.resolution) for o in scene.objects])


def relation_axis(spec: PromptSpec) -> str:
  """The axis whose mirror flips the prompt's first relation."""
  if not spec.relations:
    raise ValueError("the prompt states no relation")
  return "x" if spec.relations[0].relation in ("left of", "right of") else "y"


def count_off(spec: PromptSpec, scene: Scene, delta: int, rng: np.random.Generator) -> Scene:
  """The scene with one object of the counted item fewer (delta -1) or more (+1)."""
  if delta == -1:
    return remove_asked(spec, scene)
  if delta != 1:
    raise ValueError(f"delta must be -1 or +1, got {delta}")
  item = spec.items[0]
  # An uncoloured count ("three stars") still needs a concrete colour: reuse the
  # counted objects' own, so the extra one is unmistakably one more of them.
  colour = item.colour or matching(item, scene.objects)[0].colour
  for size in vocab.SIZE_NAMES:
    for _ in range(8):
      obj = place_one(rng, item.kind, colour, size, scene.objects, scene.resolution)
      if obj is not None:
        return scene.replace(scene.objects + (obj,))
  raise ValueError("no room for one more object")
