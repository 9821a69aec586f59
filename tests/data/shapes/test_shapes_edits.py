"""Edits: instructions parse back, and the analyzer confirms the change."""

import collections

import numpy as np
import pytest

from unified_mm.data.shapes import analyzer, edits
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene, make_obj, scene_for_index


@pytest.mark.parametrize("op", edits.OPS)
def test_edit_is_confirmed_by_the_analyzer(op):
  rng = np.random.default_rng(0)
  made = 0
  for i in range(150):
    before = scene_for_index(4, i, min_objects=1, max_objects=8)
    try:
      edit, after = edits.plan_edit(before, rng, op)
    except ValueError:
      continue  # nothing this op can name unambiguously in this scene
    made += 1
    text = edits.instruction(edit, rng)
    assert edits.parse_edit(text) == edit, text
    seen_before, seen_after = analyzer.analyze(render(before)), analyzer.analyze(render(after))
    assert edits.check_edit(seen_before, edit, seen_after), text
    # Doing nothing never passes for the edit that was asked.
    assert not edits.check_edit(seen_before, edit, seen_before), text
  assert made >= 120


def test_sample_edit_mixes_ops_and_is_deterministic():
  ops = collections.Counter()
  for i in range(200):
    scene = scene_for_index(5, i, max_objects=6)
    a = edits.sample_edit(scene, np.random.default_rng(i))
    assert a == edits.sample_edit(scene, np.random.default_rng(i))
    ops[edits.parse_edit(a[0]).op] += 1
  assert set(ops) == set(edits.OPS)


def test_references_are_unambiguous():
  rng = np.random.default_rng(1)
  made = 0
  for i in range(300):
    scene = scene_for_index(6, i, min_objects=2, max_objects=10)
    try:
      edit, _ = edits.plan_edit(scene, rng, str(rng.choice(["recolour", "move", "remove"])))
    except ValueError:
      continue  # a crowded scene where nothing can move
    made += 1
    assert edits.resolve(scene, edit.kind, edit.colour) is not None
  assert made >= 250


def test_duplicates_are_never_edited_by_name():
  r = 64
  twins = Scene((make_obj("circle", "red", "small", 5, 5, r),
                 make_obj("circle", "red", "small", 40, 40, r)), r)
  for op in ("recolour", "move", "remove"):
    with pytest.raises(ValueError):
      edits.plan_edit(twins, np.random.default_rng(0), op)


def test_wrong_results_are_rejected():
  r = 64
  before = Scene((make_obj("star", "red", "medium", 5, 20, r),
                  make_obj("square", "blue", "medium", 40, 20, r)), r)
  recolour = edits.parse_edit("make the star green")
  wrong_colour = before.replace((make_obj("star", "yellow", "medium", 5, 20, r), before.objects[1]))
  assert not edits.check_edit(before, recolour, wrong_colour)
  move = edits.parse_edit("move the red star down")
  moved_up_instead = before.replace((make_obj("star", "red", "medium", 5, 2, r), before.objects[1]))
  assert not edits.check_edit(before, move, moved_up_instead)
  moved_down = before.replace((make_obj("star", "red", "medium", 5, 40, r), before.objects[1]))
  assert edits.check_edit(before, move, moved_down)
  remove = edits.parse_edit("delete the square")
  removed_wrong_one = before.replace(before.objects[1:])
  assert not edits.check_edit(before, remove, removed_wrong_one)
  add = edits.parse_edit("add a small cyan heart")
  added_large = before.replace(before.objects + (make_obj("heart", "cyan", "large", 20, 40, r),))
  assert not edits.check_edit(before, add, added_large)


@pytest.mark.parametrize("text", ["make the star", "move the star sideways", "add three hearts",
                                  "remove a star", "paint it black"])
def test_outside_the_grammar_is_an_error(text):
  with pytest.raises(ValueError):
    edits.parse_edit(text)
