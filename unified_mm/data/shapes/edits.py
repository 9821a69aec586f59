"""Edit instructions between two scenes: recolour, move, add, remove.

An instruction names its object by kind alone when the kind is unique in the
scene, else by colour and kind when that pair is unique; objects that neither
names unambiguously are never edited. `check_edit` decides whether an image
pair (read back by the analyzer) carries out an instruction, for edit accuracy.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

import numpy as np

from unified_mm.data.shapes import vocab
from unified_mm.data.shapes.scene import Obj, Scene, box_is_free, moved, place_one

OPS: tuple[str, ...] = ("recolour", "move", "add", "remove")
DIRECTIONS: dict[str, tuple[int, int]] = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
# Moves are a quarter of the image (a sixth when blocked) and count as done
# from a tenth: large enough to see, lenient to a generator's placement.
_MOVE_STEPS = (0.25, 1 / 6)
MIN_MOVE = 0.1
# Untouched objects must stay within this fraction of the image side.
CENTRE_TOLERANCE = 0.05
_ADD_SIZE_PROB = 0.3


@dataclasses.dataclass(frozen=True)
class Edit:
  op: str
  kind: str
  colour: str | None = None  # names the target (None: its kind is unique); for add, the new colour
  new_colour: str | None = None  # recolour only
  direction: str | None = None  # move only
  size: str | None = None  # add only, when the instruction names it


def resolve(scene: Scene, kind: str, colour: str | None) -> Obj | None:
  """The one object a reference names, or None if it names none or several."""
  hits = [o for o in scene.objects if o.kind == kind and colour in (None, o.colour)]
  return hits[0] if len(hits) == 1 else None


def _referable(scene: Scene, rng: np.random.Generator) -> list[tuple[Obj, str | None]]:
  """(object, colour to name it by or None) for every unambiguous object."""
  out = []
  for o in scene.objects:
    if resolve(scene, o.kind, None) is o:
      out.append((o, o.colour if rng.random() < 0.5 else None))
    elif resolve(scene, o.kind, o.colour) is o:
      out.append((o, o.colour))
  return out


def _without(scene: Scene, target: Obj) -> list[Obj]:
  return [o for o in scene.objects if o is not target]


def _recolour(scene: Scene, rng: np.random.Generator) -> tuple[Edit, Scene] | None:
  refs = _referable(scene, rng)
  if not refs:
    return None
  o, ref_colour = refs[rng.integers(len(refs))]
  choices = [c for c in vocab.COLOUR_NAMES if c != o.colour]
  new = choices[rng.integers(len(choices))]
  objects = [dataclasses.replace(x, colour=new) if x is o else x for x in scene.objects]
  return Edit("recolour", o.kind, ref_colour, new_colour=new), scene.replace(objects)


def _move(scene: Scene, rng: np.random.Generator) -> tuple[Edit, Scene] | None:
  refs = _referable(scene, rng)
  r = scene.resolution
  for i in rng.permutation(len(refs)):
    o, ref_colour = refs[i]
    for name in rng.permutation(list(DIRECTIONS)):
      for step in _MOVE_STEPS:
        dx, dy = (int(round(step * r)) * d for d in DIRECTIONS[str(name)])
        new = moved(o, dx, dy)
        if box_is_free(new.box, _without(scene, o), r):
          objects = [new if x is o else x for x in scene.objects]
          return Edit("move", o.kind, ref_colour, direction=str(name)), scene.replace(objects)
  return None


def _add(scene: Scene, rng: np.random.Generator) -> tuple[Edit, Scene] | None:
  kind = vocab.KINDS[rng.integers(len(vocab.KINDS))]
  colour = vocab.COLOUR_NAMES[rng.integers(len(vocab.COLOUR_NAMES))]
  for size in reversed(vocab.SIZE_NAMES[:rng.integers(len(vocab.SIZE_NAMES)) + 1]):
    obj = place_one(rng, kind, colour, size, scene.objects, scene.resolution)
    if obj is not None:
      named = size if rng.random() < _ADD_SIZE_PROB else None
      return Edit("add", kind, colour, size=named), scene.replace(scene.objects + (obj,))
  return None


def _remove(scene: Scene, rng: np.random.Generator) -> tuple[Edit, Scene] | None:
  refs = _referable(scene, rng)
  if not refs:
    return None
  o, ref_colour = refs[rng.integers(len(refs))]
  return Edit("remove", o.kind, ref_colour), scene.replace(_without(scene, o))


_PLANNERS: dict[str, Callable[[Scene, np.random.Generator], tuple[Edit, Scene] | None]] = {
    "recolour": _recolour, "move": _move, "add": _add, "remove": _remove,
}


def plan_edit(scene: Scene, rng: np.random.Generator, op: str | None = None) -> tuple[Edit, Scene]:
  """(edit, edited scene); op None tries the ops in random order."""
  ops = [op] if op is not None else [OPS[i] for i in rng.permutation(len(OPS))]
  for name in ops:
    planned = _PLANNERS[name](scene, rng)
    if planned is not None:
      return planned
  raise ValueError(f"no {ops} edit applies to this scene")


# ----------------------------------------------------------- instructions --

_TEMPLATES = {
    "recolour": ("make the {ref} {new}", "change the {ref} to {new}", "turn the {ref} {new}"),
    "move": ("move the {ref} {dir}", "shift the {ref} {dir}"),
    "add": ("add {np}", "draw {np}"),
    "remove": ("remove the {ref}", "delete the {ref}", "take away the {ref}"),
}
_DIRECTION_PHRASES = {"left": ("to the left", "left"), "right": ("to the right", "right"),
                      "up": ("up", "upwards"), "down": ("down", "downwards")}


def instruction(edit: Edit, rng: np.random.Generator) -> str:
  """One phrasing of `edit`."""
  ref = f"{edit.colour} {edit.kind}" if edit.colour else edit.kind
  words = " ".join(w for w in (edit.size, edit.colour, edit.kind) if w)
  np_ = ("an " if words[0] in "aeiou" else "a ") + words
  direction = edit.direction and str(rng.choice(_DIRECTION_PHRASES[edit.direction]))
  template = str(rng.choice(_TEMPLATES[edit.op]))
  return template.format(ref=ref, new=edit.new_colour, dir=direction, np=np_)


def sample_edit(scene: Scene, rng: np.random.Generator, op: str | None = None) -> tuple[str, Scene]:
  """(instruction, edited scene). Raises ValueError when no edit applies."""
  edit, edited = plan_edit(scene, rng, op)
  return instruction(edit, rng), edited


def _alternation(words) -> str:
  return "|".join(sorted(words, key=len, reverse=True))


_C, _K, _S = (_alternation(vocab.COLOUR_NAMES), _alternation(vocab.KINDS),
              _alternation(vocab.SIZE_NAMES))
_PATTERNS = (
    ("recolour", rf"(?:make|change|turn) the (?:(?P<colour>{_C}) )?(?P<kind>{_K})(?: to)? (?P<new>{_C})"),
    ("move", rf"(?:move|shift) the (?:(?P<colour>{_C}) )?(?P<kind>{_K}) (?:to the )?"
             rf"(?P<dir>left|right|up|down)(?:wards)?"),
    ("add", rf"(?:add|draw) an? (?:(?P<size>{_S}) )?(?:(?P<colour>{_C}) )?(?P<kind>{_K})"),
    ("remove", rf"(?:remove|delete|take away) the (?:(?P<colour>{_C}) )?(?P<kind>{_K})"),
)


def parse_edit(text: str) -> Edit:
  """The Edit an instruction asks for. Raises ValueError outside the grammar."""
  clean = " ".join(re.findall(r"[a-z]+", text.lower()))
  for op, pattern in _PATTERNS:
    m = re.fullmatch(pattern, clean)
    if m:
      g = m.groupdict()
      return Edit(op, g["kind"], g.get("colour"), g.get("new"), g.get("dir"), g.get("size"))
  raise ValueError(f"not an edit instruction: {text!r}")


# ------------------------------------------------------------------ check --

def _match_rest(expected: list[Obj], found: tuple[Obj, ...], tol: float) -> list[Obj] | None:
  """Pairs each expected object with an unused found one of the same kind and
  colour within tol px; returns the found objects left over, None if any
  expected object is missing."""
  left = list(found)
  for e in expected:
    near = [f for f in left if (f.kind, f.colour) == (e.kind, e.colour)
            and abs(f.cx - e.cx) <= tol and abs(f.cy - e.cy) <= tol]
    if not near:
      return None
    left.remove(min(near, key=lambda f: abs(f.cx - e.cx) + abs(f.cy - e.cy)))
  return left


def _moved_as_said(before: Obj, after: Obj, direction: str, resolution: int, tol: float) -> bool:
  ux, uy = DIRECTIONS[direction]
  dx, dy = after.cx - before.cx, after.cy - before.cy
  along, across = dx * ux + dy * uy, abs(dx * uy - dy * ux)
  return along >= MIN_MOVE * resolution and across <= tol


def check_edit(before: Scene, edit: Edit, after: Scene) -> bool:
  """Whether `after` is `before` with `edit` done and nothing else changed.

  Objects are compared by kind, colour and centre (within CENTRE_TOLERANCE of
  the image side), so the scenes may come from the analyzer.
  """
  tol = max(2.0, CENTRE_TOLERANCE * before.resolution)
  if edit.op == "add":
    extra = _match_rest(list(before.objects), after.objects, tol)
    return (extra is not None and len(extra) == 1 and extra[0].kind == edit.kind
            and extra[0].colour == edit.colour and edit.size in (None, extra[0].size))
  target = resolve(before, edit.kind, edit.colour)
  if target is None:
    return False
  extra = _match_rest(_without(before, target), after.objects, tol)
  if extra is None:
    return False
  if edit.op == "remove":
    return not extra
  if len(extra) != 1:
    return False
  (new,) = extra
  if edit.op == "recolour":
    return ((new.kind, new.colour) == (target.kind, edit.new_colour)
            and abs(new.cx - target.cx) <= tol and abs(new.cy - target.cy) <= tol)
  if edit.op == "move":
    return ((new.kind, new.colour) == (target.kind, target.colour)
            and _moved_as_said(target, new, edit.direction, before.resolution, tol))
  raise ValueError(f"unknown edit op {edit.op!r}")
