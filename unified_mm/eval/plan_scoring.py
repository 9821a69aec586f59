"""Where the errors are: the plan against the prompt, the image against its plan.

A written plan (parsed `LayoutObject`s) becomes a scene graph without any
pixels: each label "large red star" gives kind, colour and size, each box its
centre. The prompt scorer then checks the plan as it checks an analyzed image
(`plan_correct`: the planner did its job), and the analyzed image is matched
against the plan object by object (`image_matches_plan`: the drawer did its
job). A prompt that fails with a correct plan and a drawing that misses it is
the drawer's failure; one whose plan is already wrong is the planner's.
"""

from __future__ import annotations

from collections.abc import Sequence

from unified_mm.data.shapes.grounding import parse_label
from unified_mm.data.shapes.scene import Obj, Scene
from unified_mm.data.shapes.scorer import score
from unified_mm.data.shapes.spec import PromptSpec

# A detected object counts as drawing a plan object when its centre lies in the
# plan's box grown by this many pixels (a bin is 4 px at 16 bins, 1 px at 64, at 64 px).
CENTRE_SLACK = 4.0


def plan_scene(objects: Sequence, bins: int, resolution: int = 64) -> Scene:
  """The plan as a scene graph; objects whose label is not "size colour kind" are left out."""
  out = []
  for o in objects:
    parsed = parse_label(o.label)
    if parsed is None:
      continue
    x0, y0, x1, y1 = o.pixel_box(bins, resolution)
    kind, colour, size = parsed
    out.append(Obj(kind, colour, size, (x0 + x1) / 2, (y0 + y1) / 2,
                   (int(x0), int(y0), int(x1), int(y1))))
  return Scene(tuple(out), resolution)


def image_matches_plan(plan: Scene, image: Scene, slack: float = CENTRE_SLACK) -> bool:
  """Every planned object drawn (kind, colour, centre inside its box) and nothing else."""
  if len(plan.objects) != len(image.objects):
    return False
  free = list(image.objects)
  for p in plan.objects:
    x0, y0, x1, y1 = p.box
    hit = next((o for o in free if o.kind == p.kind and o.colour == p.colour
                and x0 - slack <= o.cx <= x1 + slack and y0 - slack <= o.cy <= y1 + slack), None)
    if hit is None:
      return False
    free.remove(hit)
  return True


def plan_flags(spec: PromptSpec, objects: Sequence, image: Scene, bins: int) -> dict[str, bool]:
  """{"plan_correct", "image_matches_plan"} for one planned sample."""
  plan = plan_scene(objects, bins, image.resolution)
  return {"plan_correct": bool(score(spec, plan)["correct"]),
          "image_matches_plan": image_matches_plan(plan, image)}
