"""The built-in benchmark: prompts per GenEval category, each with a scene that
realises it (a reference answer, and a check that the prompt is satisfiable).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from unified_mm.data.shapes import captions, vocab
from unified_mm.data.shapes.scene import Scene, as_rng, place_objects, sample_attrs
from unified_mm.data.shapes.spec import CATEGORIES, Item, PromptSpec, make_spec

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
               resolution: int, size_probs: Sequence[float] | None = None) -> Scene:
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
  return Scene(place_objects(rng, attrs, resolution), resolution)


def sample_prompt(rng_or_seed: Any, category: str, num_objects: int | None = None,
                  resolution: int = 64, size_probs: Sequence[float] | None = None
                  ) -> tuple[str, PromptSpec, Scene]:
  """(prompt, spec, reference scene) for one GenEval-style category.

  num_objects sets the count for "counting" and the number of distinct
  objects for "binding"; the other categories ignore it. `size_probs`
  (small, medium, large) draws the objects' sizes; None: uniform (the
  benchmark's prompts). A size the prompt then names is the one drawn.
  """
  rng = as_rng(rng_or_seed)
  for _ in range(_MAX_TRIES):
    scene = _scene_for(rng, category, num_objects, resolution, size_probs)
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
