"""The scorer marks right images right and deliberately wrong ones wrong."""

import dataclasses

import numpy as np
import pytest

from unified_mm.data.shapes import vocab
from unified_mm.data.shapes.captions import parse_caption
from unified_mm.data.shapes.prompts import sample_prompt
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene, make_obj, scene_for_index
from unified_mm.data.shapes.scorer import multiset_match, score, summarize

R = 64


def _image(*objs) -> np.ndarray:
  """Objects as (kind, colour, x0, y0), all medium."""
  return render(Scene(tuple(make_obj(k, c, "medium", x, y, R) for k, c, x, y in objs), R))


def test_binding_swapped_colours_is_wrong():
  spec = parse_caption("a red circle and a blue square")
  right = score(spec, _image(("circle", "red", 5, 5), ("square", "blue", 40, 40)))
  swapped = score(spec, _image(("circle", "blue", 5, 5), ("square", "red", 40, 40)))
  assert right["correct"] and right["binding_accuracy"] == 1.0
  assert not swapped["correct"] and swapped["binding_accuracy"] == 0.0
  assert swapped["num_extra"] == 2


def test_missing_object_is_wrong():
  spec = parse_caption("a circle and a square")
  assert score(spec, _image(("circle", "red", 5, 5), ("square", "blue", 40, 40)))["correct"]
  missing = score(spec, _image(("circle", "red", 5, 5)))
  assert not missing["correct"] and missing["binding_accuracy"] == 0.5


@pytest.mark.parametrize("n,correct", [(2, False), (3, True), (4, False)])
def test_counting_is_exact(n, correct):
  spec = parse_caption("three green stars")
  spots = [(3, 3), (40, 3), (3, 40), (40, 40)][:n]
  result = score(spec, _image(*[("star", "green", x, y) for x, y in spots]))
  assert result["correct"] is correct
  assert result["binding_accuracy"] == min(n, 3) / 3


def test_counting_ignores_other_colours_only_when_no_colour_is_asked():
  image = _image(("star", "green", 3, 3), ("star", "green", 40, 3), ("star", "red", 3, 40))
  assert score(parse_caption("two green stars"), image)["correct"]
  assert not score(parse_caption("two stars"), image)["correct"]


def test_mirrored_position_is_wrong():
  spec = parse_caption("a red circle left of a blue square")
  image = _image(("circle", "red", 5, 20), ("square", "blue", 40, 22))
  assert score(spec, image)["correct"]
  assert not score(spec, image[:, ::-1])["correct"]
  assert score(parse_caption("a red circle right of a blue square"), image[:, ::-1])["correct"]


def test_vertical_relations():
  image = _image(("heart", "white", 20, 3), ("diamond", "black", 22, 40))
  assert score(parse_caption("a white heart above a black diamond"), image)["correct"]
  assert score(parse_caption("a black diamond below a white heart"), image)["correct"]
  assert not score(parse_caption("a white heart below a black diamond"), image)["correct"]


def test_side_by_side_is_neither_above_nor_below():
  image = _image(("circle", "red", 5, 20), ("square", "blue", 40, 20))
  assert not score(parse_caption("a red circle above a blue square"), image)["correct"]
  assert not score(parse_caption("a red circle below a blue square"), image)["correct"]


def test_single_and_colours():
  image = _image(("diamond", "purple", 10, 10))
  assert score(parse_caption("a diamond"), image)["correct"]
  assert score(parse_caption("a purple diamond"), image)["correct"]
  assert not score(parse_caption("a magenta diamond"), image)["correct"]
  assert not score(parse_caption("a heart"), image)["correct"]
  assert not score(parse_caption("a large purple diamond"), image)["correct"]  # it is medium


def test_binding_accuracy_counts_the_objects_kept():
  text, spec, scene = sample_prompt(0, "binding", num_objects=12)
  assert score(spec, render(scene))["binding_accuracy"] == 1.0
  broken = list(scene.objects)
  for i in range(3):  # recolour three objects to a colour pair the prompt lacks
    asked = {(o.kind, o.colour) for o in scene.objects}
    colour = next(c for c in vocab.COLOUR_NAMES if (broken[i].kind, c) not in asked)
    broken[i] = dataclasses.replace(broken[i], colour=colour)
  result = score(spec, render(scene.replace(broken)))
  assert result["binding_accuracy"] == pytest.approx(9 / 12)
  assert not result["all_correct"]


def test_reference_scenes_of_every_category_score_correct():
  results = []
  for c, category in enumerate(("single", "two", "counting", "colours", "position", "binding")):
    for i in range(20):
      _, spec, scene = sample_prompt(np.random.default_rng([c, i]),
                                     category, num_objects=4 if category == "binding" else None)
      assert spec.category == category
      results.append(score(spec, render(scene)))
  summary = summarize(results)
  assert summary["overall"] == 1.0 and summary["binding/accuracy_at_4"] == 1.0


def test_summarize_averages_categories_not_prompts():
  rows = [{"category": "single", "correct": True, "num_asked": 1, "binding_accuracy": 1.0}] * 3
  rows += [{"category": "binding", "correct": False, "num_asked": 4, "binding_accuracy": 0.5}]
  summary = summarize(rows)
  assert summary["overall"] == 0.5
  assert summary["binding/accuracy_at_4"] == 0.5


def test_multiset_match():
  a = scene_for_index(0, 0, max_objects=6)
  shuffled = a.replace(a.objects[::-1])
  assert multiset_match(a, shuffled)
  o = a.objects[0]
  other = next(c for c in vocab.COLOUR_NAMES if c != o.colour)
  assert not multiset_match(a, a.replace((dataclasses.replace(o, colour=other),) + a.objects[1:]))
  assert not multiset_match(a, a.replace(a.objects[1:]))
