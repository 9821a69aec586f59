"""The built-in benchmark: prompts per GenEval category, each with a scene that
realises it (a reference answer, and a check that the prompt is satisfiable).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from unified_mm.data.shapes import captions, vocab
from unified_mm.data.shapes.scene import Scene, as_rng, place_objects, sample_attrs
from unified_mm.data.shapes.spec import (CATEGORIES, RELATIONS, Item, PromptSpec, Relation,
                                         make_spec)

# Object counts for the binding-vs-count curve; 20 is the headline claim.
DEFAULT_BINDING_COUNTS: tuple[int, ...] = (2, 4, 6, 8, 12, 16, 20)
# Counting prompts ask for two to four objects, as GenEval's do.
_COUNTS = (2, 3, 4)
# Only "position" can fail (two objects too close for a clear relation).
_MAX_TRIES = 100


def _distinct_pairs(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
  """n different (kind, colour) pairs, so every object is named uniquely."""
  pairs = [(k, c) for k in vocab.KINDS for c in vocab.COLOUR_NAMES]
  if n > len(pairs):
    raise ValueError(f"at most {len(pairs)} distinct objects, asked for {n}")
  return [pairs[i] for i in rng.choice(len(pairs), n, replace=False)]


def _scene_for(rng: np.random.Generator, category: str, n: int | None,
               resolution: int, size_probs: Sequence[float] | None = None,
               align: int = 0) -> Scene:
  def sizes(m: int) -> list[str]:
    # p=None draws exactly what rng.integers did: the benchmark's prompts stay put.
    return [vocab.SIZE_NAMES[i] for i in rng.choice(len(vocab.SIZE_NAMES), m, p=size_probs)]

  if category in ("single", "colours"):
    attrs = sample_attrs(rng, 1, size_probs=size_probs)
  elif category == "two":
    kinds = rng.choice(len(vocab.KINDS), 2, replace=False)
    attrs = [(vocab.KINDS[k], a[1], a[2])
             for k, a in zip(kinds, sample_attrs(rng, 2, size_probs=size_probs))]
  elif category == "counting":
    m = n or int(rng.choice(_COUNTS))
    kind, colour, _ = sample_attrs(rng, 1)[0]
    attrs = [(kind, colour, s) for s in sizes(m)]
  elif category in ("position", "binding"):
    m = 2 if category == "position" else (n or 2)
    attrs = [(k, c, s) for (k, c), s in zip(_distinct_pairs(rng, m), sizes(m))]
  else:
    raise ValueError(f"unknown category {category!r}; known: {CATEGORIES}")
  return Scene(place_objects(rng, attrs, resolution, align=align), resolution)


def sample_prompt(rng_or_seed: Any, category: str, num_objects: int | None = None,
                  resolution: int = 64, size_probs: Sequence[float] | None = None,
                  align: int = 0) -> tuple[str, PromptSpec, Scene]:
  """(prompt, spec, reference scene) for one GenEval-style category.

  num_objects sets the count for "counting" and the number of distinct
  objects for "binding"; the other categories ignore it. `size_probs`
  (small, medium, large) draws the objects' sizes; None: uniform (the
  benchmark's prompts). A size the prompt then names is the one drawn.
  `align` puts the objects on a lattice (scene.place_one).
  """
  rng = as_rng(rng_or_seed)
  for _ in range(_MAX_TRIES):
    scene = _scene_for(rng, category, num_objects, resolution, size_probs, align)
    if category == "binding":
      # Every object, each with its colour: "a red circle, ... and a blue star".
      spec = make_spec(tuple(Item(o.kind, o.colour) for o in scene.objects))
      return captions.write(spec, rng), spec, scene
    if category == "counting":
      o = scene.objects[0]
      colour = o.colour if rng.random() < 0.5 else None
      spec = make_spec((Item(o.kind, colour, count=len(scene.objects), exact=True),))
      return captions.write(spec, rng), spec, scene
    try:
      text, spec = captions.describe(scene, rng, category)
      return text, spec, scene
    except ValueError:
      continue  # two objects too close for a clear relation: place again
  raise RuntimeError(f"could not realise a {category!r} prompt at {resolution}px")


# Compound prompts: a count, a size and a relation inside one prompt ("two red
# circles left of a blue square"), which the six categories each ask alone. The
# planner trained on the categories only wrote one circle there (docs/quality.md,
# "Compound prompts"); not a benchmark category, so GenEval's overall is unchanged.
_COMPOUND_SIZE_PROB = 0.3
_COMPOUND_COUNT_PROB = 0.5
_PLACEMENT_TRIES = 20


def _compound_spec(rng: np.random.Generator, max_objects: int) -> tuple[PromptSpec, list[int]]:
  """A spec of 2-3 distinct (kind, colour) items, some counted, at most one relation
  (between two items), and how many objects each item draws."""
  relation = bool(rng.random() < 0.5)
  n_items = 2 if relation else min(int(rng.integers(2, 4)), max_objects)
  pairs = _distinct_pairs(rng, n_items)
  kinds = [k for k, _ in pairs]
  items, counts = [], []
  for i, (kind, colour) in enumerate(pairs):
    room = max_objects - sum(counts) - (n_items - i - 1)  # one object left for each later item
    count = min(int(rng.choice(_COUNTS[:2])), room) if rng.random() < _COMPOUND_COUNT_PROB else 1
    size = str(rng.choice(vocab.SIZE_NAMES)) if rng.random() < _COMPOUND_SIZE_PROB else None
    # A colour is left out only where the kind alone names the item unambiguously.
    named = colour if kinds.count(kind) > 1 or rng.random() < 0.8 else None
    items.append(Item(kind, named, size, count=count, exact=count > 1))
    counts.append(count)
  rels = (Relation(0, str(rng.choice(RELATIONS)), 1),) if relation else ()
  return make_spec(tuple(items), rels), counts


def sample_compound(rng_or_seed: Any, max_objects: int = 6, resolution: int = 64,
                    size_probs: Sequence[float] | None = None,
                    align: int = 0) -> tuple[str, PromptSpec, Scene]:
  """(prompt, spec, reference scene) for a compound prompt: every asked object is
  drawn, nothing else, and a relation holds clearly between every pair it names."""
  rng = as_rng(rng_or_seed)
  for _ in range(_MAX_TRIES):
    spec, counts = _compound_spec(rng, max(max_objects, 2))
    for _ in range(_PLACEMENT_TRIES):
      attrs = []
      for item, count in zip(spec.items, counts):
        colour = item.colour or str(rng.choice(vocab.COLOUR_NAMES))
        for _ in range(count):
          size = item.size or str(rng.choice(vocab.SIZE_NAMES, p=size_probs))
          attrs.append((item.kind, colour, size))
      objects = place_objects(rng, attrs, resolution, align=align)
      if [o.size for o in objects] != [a[2] for a in attrs]:
        continue  # crowded: place_objects shrank one, and a named size would be wrong
      if spec.relations:
        (rel,) = spec.relations
        subjects, others = objects[:counts[0]], objects[counts[0]:counts[0] + counts[1]]
        if any(captions.relation_between(a, b, resolution) != rel.relation
               for a in subjects for b in others):
          continue
      return captions.write(spec, rng), spec, Scene(objects, resolution)
    # No clear placement (three large hearts right of two stars): another prompt.
  raise RuntimeError(f"could not realise a compound prompt at {resolution}px")


def benchmark(seed: int, per_category: int = 50, resolution: int = 64,
              binding_counts: Sequence[int] = DEFAULT_BINDING_COUNTS) -> list[dict[str, Any]]:
  """The fixed prompt set: per_category prompts per category, plus per_category
  binding prompts for each object count in binding_counts."""
  jobs = [(c, None) for c in CATEGORIES if c != "binding"]
  jobs += [("binding", n) for n in binding_counts]
  rows = []
  for j, (category, n) in enumerate(jobs):
    for i in range(per_category):
      text, spec, scene = sample_prompt(np.random.default_rng([seed, j, i]), category, n, resolution)
      rows.append({"id": f"{category}{'' if n is None else n}/{i}", "category": category,
                   "prompt": text, "spec": spec.to_dict(), "scene": scene.to_dict(),
                   "num_objects": spec.num_objects})
  return rows
