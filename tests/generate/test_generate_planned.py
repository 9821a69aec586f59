"""Planned generation and the benchmark report on a run root of tiny, briefly
trained stages: the wiring and the report's sections, not the quality."""

import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from stage_factories import tiny_renderer, train_tiny_root

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
  import jax
  return train_tiny_root(tmp_path_factory.mktemp("planned_root"), jax.devices()[:1],
                         text_only=True)


@pytest.fixture(scope="module")
def stages(run_root):
  from unified_mm.generate.stages import load_stages
  return load_stages(run_root)


@pytest.fixture(scope="module")
def layout_root(run_root, tmp_path_factory):
  """The same tokenizer and transformer with a layout renderer (draws from the plan)."""
  import jax
  from unified_mm.cli.commands.train import train_stage
  root = tmp_path_factory.mktemp("layout_root")
  for stage in ("tokenizer", "ar"):
    (root / stage).symlink_to(run_root / stage)
  train_stage(tiny_renderer(root / "tokenizer", "renderer_layout"), root / "renderer",
              devices=jax.devices()[:1])
  return root


def test_layout_renderer_draws_plans_and_previews_the_rest(layout_root):
  from unified_mm.eval.shapes_benchmark import run_benchmark
  from unified_mm.generate.pipeline import generate
  from unified_mm.generate.stages import load_stages
  stages = load_stages(layout_root)
  assert not stages.renderer_reads_codes
  prompts = ["a red circle", "two blue squares left of a green star"]
  planned = generate(stages, prompts, seed=0, planned=True, steps=2, max_objects=4)
  plain = generate(stages, prompts, seed=0, planned=False, steps=2)
  # Without a plan there is nothing for it to draw: the codes' preview is shown.
  np.testing.assert_array_equal(plain.images, stages.frontend.decode_codes(plain.codes))
  assert not np.array_equal(planned.images, stages.frontend.decode_codes(planned.codes))
  out = run_benchmark(layout_root, per_category=1, binding_counts=(2,), batch=8,
                      caption_scenes=0, edit_scenes=2, stages=stages)
  assert set(out["paths"]) == {"planned + renderer", "planned + preview", "plain + preview"}


def test_generate_with_and_without_a_plan(stages):
  from unified_mm.generate.pipeline import generate
  prompts = ["a red circle", "two blue squares left of a green star"]
  planned = generate(stages, prompts, seed=0, planned=True, steps=2, max_objects=4)
  plain = generate(stages, prompts, seed=0, planned=False, steps=2)
  for out in (planned, plain):
    assert out.images.shape == (2, 64, 64, 3) and out.images.dtype == np.uint8
    grid = stages.frontend.code_grid
    assert out.codes.shape == (2, grid, grid)
  assert plain.plans is None
  assert len(planned.plans) == 2 and all(1 <= len(p) <= 4 for p in planned.plans)
  # The plain path keeps its keys: the same seed draws the same codes as before plans existed.
  again = generate(stages, prompts, seed=0, planned=False, steps=2)
  np.testing.assert_array_equal(plain.codes, again.codes)


def test_renderer_draws_from_inside_a_training_mesh(stages):
  """GRPO draws its plans inside its training loop: the context is the loop's mesh
  (here all 8 devices) and its key lives there, while the renderer sits on one."""
  import jax
  from jax.sharding import NamedSharding, PartitionSpec

  from unified_mm.generate.pipeline import render_codes
  from unified_mm.parallel.mesh import make_mesh
  grid = stages.frontend.code_grid
  codes = np.arange(2 * grid * grid, dtype=np.int32).reshape(2, grid, grid) % 7
  prompts = ["a red circle", "a star"]
  alone = render_codes(stages, codes, prompts, jax.random.key(5), steps=2)
  mesh = make_mesh({"data": -1}, jax.devices())
  assert mesh.size == 8
  with jax.set_mesh(mesh):
    key = jax.device_put(jax.random.key(5), NamedSharding(mesh, PartitionSpec()))
    inside = render_codes(stages, codes, prompts, key, steps=2)
  np.testing.assert_array_equal(alone, inside)


def _umm(*args, env):
  return subprocess.run([sys.executable, "-m", "unified_mm.cli.main", *map(str, args)],
                        capture_output=True, text=True, env=env, cwd=REPO, timeout=900)


def test_cli_shows_the_plan_and_notes_bad_prompts(run_root, stages, tmp_path, subprocess_env):
  prompts = tmp_path / "prompts.txt"
  many = ", ".join(f"a red {k}" for k in ["circle", "square", "star"] * 9)
  prompts.write_text(f"a red circle\na zebra on a unicycle\n{many}\n")
  r = _umm("generate", "--workdir", run_root, "--prompt-file", prompts, "--out",
           tmp_path / "out", "--batch-size", 3, "--steps", 2, "--show-plan",
           env=subprocess_env(1))
  assert r.returncode == 0, r.stderr[-3000:]
  assert len(list((tmp_path / "out").glob("*.png"))) == 3
  report = json.loads(r.stdout.strip().splitlines()[-1])
  assert report["planned"] is True
  assert "zebra" in " ".join(report["notes"]["a zebra on a unicycle"])
  assert "27 objects" in " ".join(report["notes"][many])
  assert r.stderr.count("plan for ") == 3 and " box (" in r.stderr
  # With no sampling flags it samples as the transformer's preset says (what the
  # benchmark measures): the same plans as the pipeline given that preset.
  from unified_mm.data.layout import layout_text
  from unified_mm.generate.pipeline import generate
  s = stages.ar.config.sample
  want = generate(stages, prompts.read_text().splitlines(), seed=0, planned=True, preview=True,
                  cfg_scale=s.cfg_scale, plan_cfg=s.plan_cfg, plan_temperature=s.plan_temperature,
                  plan_gap=s.plan_gap, plan_min_box=s.plan_min_box, plan_fit=s.plan_fit)
  for plan in want.plans:
    assert layout_text(plan) in r.stderr
  r = _umm("generate", "--workdir", run_root, "--prompt", " ", "--out", tmp_path / "empty.png",
           "--steps", 2, env=subprocess_env(1))
  assert r.returncode == 0, r.stderr[-3000:]
  assert (tmp_path / "empty.png").exists() and "empty prompt" in r.stderr


def test_report_from_a_trained_root(run_root):
  from unified_mm.eval.report import write_report
  from unified_mm.eval.shapes_benchmark import run_benchmark
  out = run_benchmark(run_root, per_category=1, binding_counts=(2, 4), batch=8,
                      caption_scenes=3, edit_scenes=3)
  assert set(out["paths"]) == {"planned + renderer", "planned + preview", "plain + renderer",
                               "plain + preview", "text-only renderer"}
  planned = out["paths"]["planned + renderer"]["results"]
  assert all("plan_correct" in r and "image_matches_plan" in r for r in planned)
  path = write_report(run_root, paths=out["paths"], captioning=out["captioning"],
                      editing=out["editing"], stage_times={"tokenizer": 1.0}, probe_tflops=0.2,
                      commands=["umm demo --workdir ROOT"])
  text = path.read_text()
  for section in ("binding", "Plan diagnostics", "probe", "umm demo"):
    assert section.lower() in text.lower(), section
  links = re.findall(r"\]\(([^)]+\.png)\)", text)
  assert links and all((path.parent / link).exists() for link in links)


def test_fitted_plans_read_the_worlds_sides_by_token(stages):
  """`plan_fit`: the shapes world's least box per label reaches the grammar as
  (size id, kind id, w, h) of the transformer's own tokenizer, and generation
  with it still writes plans that parse (the rule itself:
  tests/models/transformer/test_transformer_layout_constraint.py)."""
  from unified_mm.data.shapes.grounding import label_sides
  from unified_mm.generate.pipeline import generate, label_side_ids
  ar = stages.ar
  got = {(ar.text.decode([a]), ar.text.decode([b])): (w, h)
         for a, b, w, h in label_side_ids(ar)}
  assert got == {(s, k): (w, h) for s, k, w, h in label_sides(ar.vocab.layout_bins, 64)}
  out = generate(stages, ["a large red heart", "three small blue semicircles"], seed=0,
                 planned=True, steps=2, max_objects=4, plan_gap=2, plan_min_box=2,
                 plan_fit=True)
  assert all(1 <= len(p) <= 4 for p in out.plans)
  for plan in out.plans:
    for o in plan:
      x0, y0, x1, y1 = o.box
      assert x1 - x0 + 1 >= 2 and y1 - y0 + 1 >= 2


def test_compound_eval_scores_every_prompt_of_a_trained_root(layout_root, capsys):
  from unified_mm.eval.compound_eval import FLAGS, main
  assert main(["--workdir", str(layout_root), "--prompts", "6", "--batch", "8"]) == 0
  out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
  assert out["all"]["n"] == 6 == out["relation"]["n"] + out["list"]["n"]
  for group in ("all", "relation", "list"):
    for flag in (*FLAGS, "second_reader"):
      value = out[group][flag]
      assert value is None if not out[group]["n"] else 0.0 <= value <= 1.0


def test_phrasing_eval_rewrites_every_prompt_and_scores_each_rewrite(layout_root, capsys):
  from unified_mm.eval.phrasing_eval import REWRITES, main
  assert main(["--workdir", str(layout_root), "--per-category", "1", "--batch", "8"]) == 0
  lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
  assert [line["rewrite"] for line in lines] == list(REWRITES)
  assert lines[1]["example"][0].isupper() and lines[1]["example"].endswith(".")
  assert any(ch.isdigit() for ch in lines[-1]["example"])  # the counting prompt, in digits
  for line in lines:
    assert 0.0 <= line["overall"] <= 1.0 and 0.0 <= line["plan_correct"] <= 1.0
