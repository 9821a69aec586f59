"""Captions: a small English grammar over scenes, and its parser.

    caption   := [prefix] list | [prefix] phrase relation phrase
    list      := phrase | phrase ("," phrase)* "and" phrase
    phrase    := ("a" | "an" | number) [size] [colour] kind["s"]
    relation  := ["to the" | "on the"] ("left" | "right") "of" | "above" | "below"
    prefix    := "a picture of" | "an image of" | "a scene with" | "there is" | "there are"

Numbers are words (one..twenty). Each caption comes with its PromptSpec; the
parser maps every caption the grammar can produce back to the same spec, and
is what reads model-written captions back for scoring.
"""

from __future__ import annotations

import collections
import re
from typing import Callable

import numpy as np

from unified_mm.data.shapes import vocab
from unified_mm.data.shapes.scene import Obj, Scene
from unified_mm.data.shapes.spec import Item, PromptSpec, Relation, make_spec

STYLES: tuple[str, ...] = ("full", "single", "two", "counting", "colours", "position", "binding")
# Full descriptions dominate because they pin the whole image down; the
# partial GenEval-style ones teach each construction on its own.
DEFAULT_STYLE_WEIGHTS = {"full": 4.0, "single": 1.0, "two": 1.0, "counting": 1.0,
                         "colours": 1.0, "position": 1.0, "binding": 1.0}
# The prefixes the grammar reads; "there are" is written only where "there is"
# was drawn for a plural, so the writer draws from the first four (or none, twice).
_PREFIX_WORDS = ("a picture of", "an image of", "a scene with", "there is", "there are")
_PREFIXES = ("", "") + tuple(p + " " for p in _PREFIX_WORDS[:4])
_RELATION_PHRASES = {
    "left of": ("left of", "to the left of", "on the left of"),
    "right of": ("right of", "to the right of", "on the right of"),
    "above": ("above",),
    "below": ("below",),
}
# A relation is only stated when the centres are this far apart (fraction of
# the image side) along its axis, so it survives a generator's small shifts.
POSITION_MIN_SEPARATION = 0.15
# Probability that a phrase names the object's size.
_SIZE_PROB = 0.2


# ---------------------------------------------------------------- writing --

def noun_phrase(item: Item) -> str:
  words = [w for w in (item.size, item.colour) if w]
  words.append(vocab.PLURALS[item.kind] if item.count > 1 else item.kind)
  if item.exact:
    det = vocab.NUMBER_WORDS[item.count]
  else:
    det = "an" if words[0][0] in "aeiou" else "a"
  return " ".join([det] + words)


_NUMBERS = {w: i for i, w in enumerate(vocab.NUMBER_WORDS) if i > 0}
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBERS) + r")\b")


def with_digits(text: str) -> str:
  """`text` with its counts written as digits ("three red stars" -> "3 red stars"),
  the way people type them; parse_caption reads both."""
  return _NUMBER_WORD.sub(lambda m: str(_NUMBERS[m.group(1)]), text)


def as_typed(text: str, rng: np.random.Generator, digit_prob: float, stop_prob: float) -> str:
  """`text` with its counts in digits (`digit_prob`) and a full stop (`stop_prob`)."""
  digits, stop = rng.random(2)
  text = with_digits(text) if digits < digit_prob else text
  return text + "." if stop < stop_prob else text


def join_list(phrases: list[str]) -> str:
  if len(phrases) == 1:
    return phrases[0]
  return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def write(spec: PromptSpec, rng: np.random.Generator) -> str:
  """One phrasing of `spec`, chosen by rng."""
  if spec.relations:
    (rel,) = spec.relations
    phrase = str(rng.choice(_RELATION_PHRASES[rel.relation]))
    body = f"{noun_phrase(spec.items[rel.subject])} {phrase} {noun_phrase(spec.items[rel.object])}"
  else:
    body = join_list([noun_phrase(i) for i in spec.items])
  prefix = str(rng.choice(_PREFIXES))
  if prefix == "there is " and spec.items[0].count > 1:
    prefix = "there are "
  return prefix + body


# ------------------------------------------------- what a scene supports --

def _maybe_size(rng: np.random.Generator, obj: Obj) -> str | None:
  return obj.size if rng.random() < _SIZE_PROB else None


def _single(scene: Scene, rng: np.random.Generator) -> PromptSpec | None:
  if not scene.objects:
    return None
  o = scene.objects[rng.integers(len(scene.objects))]
  return make_spec((Item(o.kind, size=_maybe_size(rng, o)),))


def _colours(scene: Scene, rng: np.random.Generator) -> PromptSpec | None:
  if not scene.objects:
    return None
  o = scene.objects[rng.integers(len(scene.objects))]
  return make_spec((Item(o.kind, o.colour, _maybe_size(rng, o)),))


def _counting(scene: Scene, rng: np.random.Generator) -> PromptSpec | None:
  if not scene.objects:
    return None
  with_colour = bool(rng.random() < 0.5)
  groups = collections.Counter((o.kind, o.colour if with_colour else None) for o in scene.objects)
  # Counting one object is a weak test; prefer groups of two or more.
  keys = sorted(k for k, n in groups.items() if n > 1) or sorted(groups, key=str)
  kind, colour = keys[rng.integers(len(keys))]
  return make_spec((Item(kind, colour, count=groups[(kind, colour)], exact=True),))


def _two(scene: Scene, rng: np.random.Generator) -> PromptSpec | None:
  kinds = sorted({o.kind for o in scene.objects})
  if len(kinds) < 2:
    return None
  a, b = rng.choice(len(kinds), 2, replace=False)
  return make_spec((Item(kinds[a]), Item(kinds[b])))


def _binding(scene: Scene, rng: np.random.Generator) -> PromptSpec | None:
  pairs = list(dict.fromkeys((o.kind, o.colour) for o in scene.objects))
  if len(pairs) < 2:
    return None
  k = int(rng.integers(2, len(pairs) + 1))
  chosen = rng.choice(len(pairs), k, replace=False)
  return make_spec(tuple(Item(*pairs[i]) for i in chosen))


def relation_between(a: Obj, b: Obj, resolution: int) -> str | None:
  """The clear relation of a to b along their dominant axis, if any."""
  dx, dy = a.cx - b.cx, a.cy - b.cy
  if max(abs(dx), abs(dy)) < POSITION_MIN_SEPARATION * resolution:
    return None
  if abs(dx) >= abs(dy):
    return "left of" if dx < 0 else "right of"
  return "above" if dy < 0 else "below"


def _position(scene: Scene, rng: np.random.Generator) -> PromptSpec | None:
  objs = scene.objects
  pairs = [(i, j) for i in range(len(objs)) for j in range(len(objs))
           if (objs[i].kind, objs[i].colour) != (objs[j].kind, objs[j].colour)
           and relation_between(objs[i], objs[j], scene.resolution)]
  if not pairs:
    return None
  i, j = pairs[rng.integers(len(pairs))]
  rel = relation_between(objs[i], objs[j], scene.resolution)
  items = (Item(objs[i].kind, objs[i].colour), Item(objs[j].kind, objs[j].colour))
  return make_spec(items, (Relation(0, rel, 1),))


def _full(scene: Scene, rng: np.random.Generator) -> PromptSpec | None:
  if not scene.objects:
    return None
  with_size = bool(rng.random() < _SIZE_PROB)
  groups = collections.Counter((o.kind, o.colour, o.size if with_size else None)
                               for o in scene.objects)
  keys = list(groups)
  order = rng.permutation(len(keys))
  items = tuple(Item(*keys[i], count=groups[keys[i]], exact=groups[keys[i]] > 1) for i in order)
  return make_spec(items)


_BUILDERS: dict[str, Callable[[Scene, np.random.Generator], PromptSpec | None]] = {
    "full": _full, "single": _single, "two": _two, "counting": _counting,
    "colours": _colours, "position": _position, "binding": _binding,
}


def describe(scene: Scene, rng: np.random.Generator, style: str | None = None,
             weights: dict[str, float] | None = None) -> tuple[str, PromptSpec]:
  """(caption, spec) of something true about `scene`.

  `style` is one of STYLES; None draws one by `weights` among the styles the
  scene supports (e.g. "position" needs two well-separated objects).
  """
  if style is not None:
    spec = _BUILDERS[style](scene, rng)
    if spec is None:
      raise ValueError(f"scene does not support caption style {style!r}")
    return write(spec, rng), spec
  weights = weights or DEFAULT_STYLE_WEIGHTS
  names = [s for s in STYLES if weights.get(s, 0) > 0]
  p = np.array([weights[s] for s in names], dtype=np.float64)
  while len(names):
    k = int(rng.choice(len(names), p=p / p.sum()))
    spec = _BUILDERS[names[k]](scene, rng)
    if spec is not None:
      return write(spec, rng), spec
    names.pop(k)
    p = np.delete(p, k)
  raise ValueError("scene supports no caption style (is it empty?)")


def caption(scene: Scene, rng: np.random.Generator, style: str | None = None) -> str:
  return describe(scene, rng, style)[0]


# ---------------------------------------------------------------- parsing --

_SINGULAR = {vocab.PLURALS[k]: k for k in vocab.KINDS}
_PREFIX_TOKENS = tuple(tuple(p.split()) for p in _PREFIX_WORDS)
_RELATION_TOKENS = sorted(((tuple(p.split()), rel) for rel, ps in _RELATION_PHRASES.items()
                           for p in ps), key=lambda t: -len(t[0]))


def without_prefix(text: str) -> str:
  """`text` without the caption prefix it starts with ("a picture of", "there are", ...)."""
  for prefix in _PREFIX_WORDS:
    if text.startswith(prefix + " "):
      return text[len(prefix) + 1:]
  return text


def _parse_phrase(tokens: list[str]) -> Item:
  if len(tokens) < 2:
    raise ValueError(f"not a noun phrase: {' '.join(tokens)!r}")
  det, *mods, noun = tokens
  if det in ("a", "an"):
    count, exact = 1, False
  elif det in _NUMBERS:
    count, exact = _NUMBERS[det], True
  elif det.isdigit() and int(det) > 0:
    count, exact = int(det), True
  else:
    raise ValueError(f"expected 'a', 'an' or a number, got {det!r}")
  size = mods.pop(0) if mods and mods[0] in vocab.SIZES else None
  colour = mods.pop(0) if mods and mods[0] in vocab.COLOURS else None
  if mods:
    raise ValueError(f"unexpected words {mods} in {' '.join(tokens)!r}")
  plural = noun in _SINGULAR
  if not plural and noun not in vocab.KINDS:
    raise ValueError(f"unknown shape {noun!r}")
  if plural != (count > 1):
    raise ValueError(f"number does not agree in {' '.join(tokens)!r}")
  return Item(_SINGULAR.get(noun, noun), colour, size, count, exact)


def _split_list(tokens: list[str]) -> list[list[str]]:
  groups, current = [], []
  for t in tokens:
    if t in (",", "and"):
      if current:
        groups.append(current)
      current = []
    else:
      current.append(t)
  if current:
    groups.append(current)
  return groups


def _find_relation(tokens: list[str]) -> tuple[int, int, str] | None:
  """(start, end, relation) of the first relation phrase in tokens."""
  for start in range(len(tokens)):
    for phrase, rel in _RELATION_TOKENS:
      if tuple(tokens[start:start + len(phrase)]) == phrase:
        return start, start + len(phrase), rel
  return None


def parse_caption(text: str) -> PromptSpec:
  """The spec a caption asserts. Raises ValueError outside the grammar."""
  tokens = re.findall(r"[a-z]+|[0-9]+|,", text.lower())
  for prefix in _PREFIX_TOKENS:
    if tuple(tokens[:len(prefix)]) == prefix:
      tokens = tokens[len(prefix):]
      break
  if not tokens:
    raise ValueError(f"empty caption: {text!r}")
  found = _find_relation(tokens)
  if found is not None:
    start, end, rel = found
    items = (_parse_phrase(tokens[:start]), _parse_phrase(tokens[end:]))
    return make_spec(items, (Relation(0, rel, 1),))
  return make_spec(tuple(_parse_phrase(g) for g in _split_list(tokens)))
