"""GenEval-style scoring: does an image show what a prompt spec asks for?

The image is read back by the analyzer; the spec's items and relations are
then checked against the detected objects. Extra objects the prompt did not
mention are reported but do not make an image wrong, as in GenEval.
"""

from __future__ import annotations

import collections
from typing import Any, Iterable

import numpy as np

from unified_mm.data.shapes import analyzer
from unified_mm.data.shapes.scene import Obj, Scene
from unified_mm.data.shapes.spec import Item, PromptSpec, Relation

# Centres must differ by this fraction of the image side for a relation to
# hold: objects side by side at the same height are neither above nor below.
POSITION_MARGIN = 0.05


def _as_scene(image_or_scene: np.ndarray | Scene) -> Scene:
  if isinstance(image_or_scene, Scene):
    return image_or_scene
  return analyzer.analyze(image_or_scene)


def matching(item: Item, objects: Iterable[Obj]) -> list[Obj]:
  return [o for o in objects if item.matches(o.kind, o.colour, o.size)]


def item_satisfied(item: Item, found: int) -> bool:
  return found == item.count if item.exact else found >= item.count


def relation_holds(a: Obj, relation: str, b: Obj, margin: float) -> bool:
  """Whether a is `relation` b, e.g. a is left of b."""
  if relation == "left of":
    return a.cx + margin <= b.cx
  if relation == "right of":
    return a.cx >= b.cx + margin
  if relation == "above":
    return a.cy + margin <= b.cy
  if relation == "below":
    return a.cy >= b.cy + margin
  raise ValueError(f"unknown relation {relation!r}")


def _relation_satisfied(spec: PromptSpec, rel: Relation, objects: tuple[Obj, ...],
                        margin: float) -> bool:
  subjects = matching(spec.items[rel.subject], objects)
  others = matching(spec.items[rel.object], objects)
  return any(relation_holds(a, rel.relation, b, margin)
             for a in subjects for b in others if a is not b)


def score(spec: PromptSpec, image_or_scene: np.ndarray | Scene) -> dict[str, Any]:
  """Per-prompt verdict: {category, correct, binding_accuracy, ...}.

  binding_accuracy is the fraction of the asked objects that are present with
  the asked attributes (an item asking for three counts up to three);
  all_correct is whether every item and relation holds (same as correct).
  """
  scene = _as_scene(image_or_scene)
  found = [len(matching(item, scene.objects)) for item in spec.items]
  items_ok = all(item_satisfied(i, n) for i, n in zip(spec.items, found))
  margin = POSITION_MARGIN * scene.resolution
  relations_ok = all(_relation_satisfied(spec, r, scene.objects, margin) for r in spec.relations)
  asked = spec.num_objects
  present = sum(min(i.count, n) for i, n in zip(spec.items, found))
  mentioned = sum(1 for o in scene.objects
                  if any(i.matches(o.kind, o.colour, o.size) for i in spec.items))
  correct = bool(items_ok and relations_ok)
  return {
      "category": spec.category,
      "correct": correct,
      "all_correct": correct,
      "binding_accuracy": present / asked if asked else 1.0,
      "num_asked": asked,
      "num_detected": len(scene.objects),
      "num_extra": len(scene.objects) - mentioned,
  }


def multiset(scene: Scene) -> collections.Counter:
  """Counter of (kind, colour) over the scene's objects."""
  return collections.Counter((o.kind, o.colour) for o in scene.objects)


def multiset_match(scene_a: Scene, scene_b: Scene) -> bool:
  """Whether two scenes hold the same objects up to position and size."""
  return multiset(scene_a) == multiset(scene_b)


def summarize(results: Iterable[dict[str, Any]]) -> dict[str, float]:
  """Mean correctness per category, overall, and binding accuracy per object count."""
  by_category: dict[str, list[float]] = collections.defaultdict(list)
  by_count: dict[int, list[float]] = collections.defaultdict(list)
  for r in results:
    by_category[r["category"]].append(float(r["correct"]))
    if r["category"] == "binding":
      by_count[r["num_asked"]].append(r["binding_accuracy"])
  out = {f"{c}/accuracy": float(np.mean(v)) for c, v in sorted(by_category.items())}
  if by_category:
    # GenEval's overall score: the mean over categories, not over prompts.
    out["overall"] = float(np.mean([np.mean(v) for v in by_category.values()]))
  out |= {f"binding/accuracy_at_{n}": float(np.mean(v)) for n, v in sorted(by_count.items())}
  return out
