"""The benchmark prompt set and the preview sheet."""

import json

from PIL import Image

from unified_mm.data.shapes.captions import parse_caption, relation_between
from unified_mm.data.shapes.preview import preview_grid
import numpy as np

from unified_mm.data.shapes.analyzer import analyze
from unified_mm.data.shapes.prompts import benchmark, sample_compound
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene, scene_for_index
from unified_mm.data.shapes.scorer import score
from unified_mm.data.shapes.spec import CATEGORIES, PromptSpec


def test_benchmark_is_deterministic_and_self_consistent():
  rows = benchmark(3, per_category=5, binding_counts=(2, 8, 20))
  assert json.dumps(rows) == json.dumps(benchmark(3, per_category=5, binding_counts=(2, 8, 20)))
  assert len(rows) == 5 * (len(CATEGORIES) - 1 + 3)
  assert {r["category"] for r in rows} == set(CATEGORIES)
  for r in rows:
    spec = PromptSpec.from_dict(r["spec"])
    assert parse_caption(r["prompt"]) == spec
    assert spec.category == r["category"]
  assert {r["num_objects"] for r in rows if r["category"] == "binding"} == {2, 8, 20}
  twenty = [r for r in rows if r["num_objects"] == 20]
  assert all(len(Scene.from_dict(r["scene"]).objects) == 20 for r in twenty)


def test_preview_grid_writes_a_png(tmp_path):
  scenes = [scene_for_index(0, i) for i in range(5)]
  items = scenes[:3] + [render(s) for s in scenes[3:]]
  path = tmp_path / "grid.png"
  preview_grid(items, ["a caption long enough to wrap over two lines or more"] * 5, path,
               cols=3, tile=96)
  with Image.open(path) as im:
    assert im.format == "PNG"
    width, height = im.size
  assert width == 3 * (96 + 12) and height > 2 * (96 + 12)


def test_compound_prompts_combine_counts_sizes_and_relations_and_are_drawn_exactly():
  rows = [sample_compound(np.random.default_rng([4, i]), max_objects=6) for i in range(60)]
  specs = [spec for _, spec, _ in rows]
  assert any(s.relations and max(i.count for i in s.items) > 1 for s in specs)
  assert any(not s.relations and len(s.items) == 3 for s in specs)
  assert any(i.size for s in specs for i in s.items)
  for text, spec, scene in rows:
    assert parse_caption(text) == spec
    assert len(scene.objects) == spec.num_objects <= 6  # nothing unasked
    assert score(spec, analyze(render(scene)))["correct"], text
    if spec.relations:  # every subject stands in the relation to every object, not one pair
      (rel,) = spec.relations
      n0 = spec.items[0].count
      subjects, others = scene.objects[:n0], scene.objects[n0:n0 + spec.items[1].count]
      assert {relation_between(a, b, scene.resolution) for a in subjects for b in others} == {
          rel.relation}
