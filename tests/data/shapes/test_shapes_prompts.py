"""The benchmark prompt set and the preview sheet."""

import json

from PIL import Image

from unified_mm.data.shapes.captions import parse_caption
from unified_mm.data.shapes.preview import preview_grid
from unified_mm.data.shapes.prompts import benchmark
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene, scene_for_index
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
