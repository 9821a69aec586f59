"""The benchmark instrument: every prompt passes on its own reference scene and
fails on a scene that breaks it; intervals and summaries are computed right."""

import json
import math

import numpy as np
import pytest

from unified_mm.data.shapes import analyzer, edits, second_reader
from unified_mm.data.shapes.captions import caption
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene
from unified_mm.data.shapes.scorer import score
from unified_mm.data.shapes.spec import CATEGORIES, PromptSpec
from unified_mm.eval import benchmark, perturb

PER_CATEGORY = 5


@pytest.fixture(scope="module")
def rows():
  return benchmark.benchmark_prompts(per_category=PER_CATEGORY)


def _both_ways(spec: PromptSpec, scene: Scene) -> list[dict]:
  """The verdict on the scene itself and on its render read back by each reader."""
  image = render(scene)
  return [score(spec, scene), score(spec, analyzer.analyze(image)),
          score(spec, second_reader.read(image))]


def _parse(row):
  return PromptSpec.from_dict(row["spec"]), Scene.from_dict(row["scene"])


def test_rows_cover_every_category_and_curve_count(rows):
  ids = {r["id"].split("/")[0] for r in rows}
  assert ids == {c for c in CATEGORIES if c != "binding"} | {
      f"binding{n}" for n in benchmark.BINDING_COUNTS}
  assert len(rows) == PER_CATEGORY * (5 + len(benchmark.BINDING_COUNTS))
  assert max(r["num_objects"] for r in rows) == 24 < benchmark.MAX_OBJECTS_64


def test_every_prompt_scores_one_on_its_reference_scene(rows):
  for row in rows:
    spec, scene = _parse(row)
    for verdict in _both_ways(spec, scene):
      assert verdict["correct"] and verdict["binding_accuracy"] == 1.0, row["prompt"]


def test_reference_renders_summarize_to_one(rows):
  images = np.stack([render(Scene.from_dict(r["scene"])) for r in rows])  # [N, 64, 64, 3]
  summary = benchmark.summarize(benchmark.score_images(rows, images))
  for name, c in summary["categories"].items():
    assert (c["accuracy"], c["n"]) == (1.0, PER_CATEGORY), name
  assert summary["overall"] == 1.0 and summary["overall_lo"] == summary["overall_hi"] == 1.0
  assert [p["num_objects"] for p in summary["curve"]] == list(benchmark.BINDING_COUNTS)
  assert all(p["all_correct"] == p["binding_accuracy"] == 1.0 for p in summary["curve"])
  second = benchmark.second_reader_summary(benchmark.score_images(rows, images))
  assert second["overall"] == 1.0 and second["agreement"] == 1.0


def test_removing_an_asked_object_scores_zero(rows):
  for row in rows:
    spec, scene = _parse(row)
    for verdict in _both_ways(spec, perturb.remove_asked(spec, scene)):
      assert not verdict["correct"], row["prompt"]
      assert verdict["binding_accuracy"] < 1.0


def test_swapping_an_asked_colour_scores_zero(rows):
  asking = [r for r in rows if any(i["colour"] for i in r["spec"]["items"])]
  # Colours and binding always name colours; the others only sometimes.
  assert {r["category"] for r in asking} >= {"colours", "binding"}
  for row in asking:
    spec, scene = _parse(row)
    for verdict in _both_ways(spec, perturb.recolour_asked(spec, scene)):
      assert not verdict["correct"], row["prompt"]


def test_mirroring_a_relation_scores_zero(rows):
  for row in [r for r in rows if r["category"] == "position"]:
    spec, scene = _parse(row)
    flipped = perturb.mirror(scene, perturb.relation_axis(spec))
    for verdict in _both_ways(spec, flipped):
      assert not verdict["correct"], row["prompt"]
    # The other axis keeps the relation: the mirror is what breaks it, not the move.
    other = "y" if perturb.relation_axis(spec) == "x" else "x"
    assert score(spec, perturb.mirror(scene, other))["correct"]


@pytest.mark.parametrize("delta", [-1, 1])
def test_a_count_off_by_one_scores_zero(rows, delta):
  for row in [r for r in rows if r["category"] == "counting"]:
    spec, scene = _parse(row)
    off = perturb.count_off(spec, scene, delta, np.random.default_rng(0))
    assert len(off.objects) == len(scene.objects) + delta
    for verdict in _both_ways(spec, off):
      assert not verdict["correct"], row["prompt"]


@pytest.mark.parametrize("k,n", [(0, 10), (10, 10), (8, 10), (1, 3), (42, 50), (0, 1)])
def test_wilson_interval_matches_the_formula(k, n):
  z = 1.959964
  p = k / n
  centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
  half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
  lo, hi = benchmark.wilson_interval(k, n)
  assert lo == pytest.approx(max(0.0, centre - half), abs=1e-12)
  assert hi == pytest.approx(min(1.0, centre + half), abs=1e-12)
  assert 0.0 <= lo <= p <= hi <= 1.0


def test_wilson_interval_edges_and_a_published_value():
  assert benchmark.wilson_interval(0, 10)[0] == 0.0
  assert benchmark.wilson_interval(10, 10)[1] == 1.0
  assert benchmark.wilson_interval(0, 0) == (0.0, 1.0)
  # 8 of 10: 0.490-0.943 (Newcombe 1998, Table I).
  assert benchmark.wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
  lo, hi = benchmark.wilson_interval(3, 10)
  assert (lo, hi) == pytest.approx(tuple(1 - v for v in benchmark.wilson_interval(7, 10)[::-1]))


def _result(id_, category, correct, num_objects=2, **extra):
  return {"id": id_, "category": category, "correct": correct, "all_correct": correct,
          "num_objects": num_objects, "binding_accuracy": 1.0 if correct else 0.5, **extra}


def test_summarize_rules_and_extra_flags():
  results = [_result(f"{c}/{i}", c, i < 3) for c in CATEGORIES if c != "binding"
             for i in range(4)]
  results += [_result(f"binding2/{i}", "binding", i < 1, plan_correct=True) for i in range(4)]
  results += [_result(f"binding8/{i}", "binding", False, 8, plan_correct=i < 2) for i in range(4)]
  s = benchmark.summarize(results)
  assert s["categories"]["single"]["accuracy"] == 0.75
  assert s["categories"]["binding"]["n"] == 4 and s["categories"]["binding"]["accuracy"] == 0.25
  assert s["overall"] == pytest.approx((5 * 0.75 + 0.25) / 6)
  assert s["overall_lo"] < s["overall"] < s["overall_hi"]
  assert s["extra_keys"] == ["plan_correct"]
  assert s["categories"]["binding"]["extras"]["plan_correct"]["accuracy"] == 1.0
  assert s["categories"]["single"]["extras"]["plan_correct"]["n"] == 0
  eight = s["curve"][1]
  assert (eight["num_objects"], eight["all_correct"], eight["binding_accuracy"]) == (8, 0.0, 0.5)
  assert eight["extras"]["plan_correct"]["accuracy"] == 0.5
  assert (eight["lo"], eight["hi"]) == benchmark.wilson_interval(0, 4)
  flat = benchmark.flat_metrics(s)
  assert flat["binding/all_correct_at_2"] == 0.25 and flat["binding/accuracy_at_8"] == 0.5


def test_captions_of_the_true_scene_match():
  scenes = benchmark.caption_scenes(n=20)
  texts = [caption(s, np.random.default_rng(i), style="full") for i, s in enumerate(scenes)]
  good = benchmark.caption_accuracy_rows(scenes, texts)
  assert (good["accuracy"], good["n"]) == (1.0, 20)
  bad = benchmark.caption_accuracy_rows(scenes, texts[1:] + texts[:1])
  assert bad["accuracy"] < 0.5


def test_edit_cases_are_balanced_and_checked():
  cases = benchmark.edit_cases(n=24)
  assert [c["op"] for c in cases[:4]] == list(edits.OPS)
  assert all(edits.parse_edit(c["instruction"]) == c["edit"] for c in cases)
  targets = np.stack([render(c["target"]) for c in cases])  # [N, 64, 64, 3]
  done = benchmark.edit_accuracy(cases, targets)
  assert done["accuracy"] == 1.0 and set(done["per_op"]) == set(edits.OPS)
  # The unchanged source carries out no edit: add, remove, recolour and move all fail.
  undone = benchmark.edit_accuracy(cases, np.stack([render(c["source"]) for c in cases]))
  assert undone["accuracy"] == 0.0 and undone["n"] == 24


def test_a_sweep_setting_overrides_the_preset_sampling_and_keeps_the_rest():
  import types

  import ml_collections

  from unified_mm.eval.shapes_benchmark import benchmark_sampling
  preset = dict(cfg_scale=3.0, temperature=1.0, plan_cfg=2.0, plan_temperature=0.5)
  stages = types.SimpleNamespace(ar=types.SimpleNamespace(
      config=ml_collections.ConfigDict(dict(sample=preset))))
  assert benchmark_sampling(stages, {}) == preset
  assert benchmark_sampling(stages, None) == preset
  assert benchmark_sampling(stages, dict(plan_temperature=1.0, steps=4)) == dict(
      preset, plan_temperature=1.0, steps=4)


def test_compound_rows_are_fixed_apart_from_the_benchmark_and_split_by_relation():
  from unified_mm.eval.compound_eval import compound_rows, compound_summary
  rows = compound_rows(3, 12)
  assert json.dumps(rows) == json.dumps(compound_rows(3, 12))
  assert not {r["prompt"] for r in rows} & {r["prompt"] for r in benchmark.benchmark_prompts(3, 5, (2, 4))}
  results = [{"correct": i % 2 == 0, "plan_correct": True, "image_matches_plan": i % 3 == 0,
              "second_reader": {"correct": False}} for i in range(12)]
  out = compound_summary(rows, results)
  relation = [i for i, r in enumerate(rows) if r["spec"]["relations"]]
  assert 0 < len(relation) < 12
  assert out["relation"]["correct"]["correct"] == sum(i % 2 == 0 for i in relation)
  assert out["all"]["correct"]["correct"] == 6 and out["all"]["plan_correct"]["accuracy"] == 1.0
  assert out["list"]["second_reader"]["correct"] == 0
