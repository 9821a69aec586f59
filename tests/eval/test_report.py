"""The report renders from scored results: every section, every linked PNG, the
same numbers in report.json."""

import json
import re

import numpy as np
import pytest

from unified_mm.data.shapes.captions import caption
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene
from unified_mm.data.shapes.spec import CATEGORIES
from unified_mm.eval import benchmark, report


@pytest.fixture(scope="module")
def written(tmp_path_factory):
  """Two paths: clean reference renders (with plan flags) and blank images."""
  out = tmp_path_factory.mktemp("report")
  rows = benchmark.benchmark_prompts(per_category=3, binding_counts=(2, 4, 8))
  clean = np.stack([render(Scene.from_dict(r["scene"])) for r in rows])  # [N, 64, 64, 3]
  blank = np.full_like(clean, 128)  # background only: every prompt fails
  good = benchmark.score_images(rows, clean)
  for i, r in enumerate(good):
    r["plan_correct"] = i % 2 == 0
  bad = benchmark.score_images(rows, blank)
  scenes = benchmark.caption_scenes(n=6)
  captions = [caption(s, np.random.default_rng(0), style="full") for s in scenes]
  cases = benchmark.edit_cases(n=8)
  paths = {"transformer + renderer": {"summary": benchmark.summarize(good), "results": good,
                                      "images": clean, "prompts": [r["prompt"] for r in rows]},
           "text-only": {"summary": benchmark.summarize(bad), "results": bad, "images": blank,
                         "prompts": [r["prompt"] for r in rows]}}
  path = report.write_report(
      out, paths=paths, captioning=benchmark.caption_accuracy_rows(scenes, captions),
      editing={"transformer + renderer": benchmark.edit_accuracy(
          cases, np.stack([render(c["target"]) for c in cases]))},
      stage_times={"tokenizer": 600.0, "ar": 1800.0, "renderer": 1200.0}, probe_tflops=0.44,
      commands=["umm demo --workdir runs/demo"], extra_notes=["a synthetic report"])
  return path, paths


def test_every_section_is_present(written):
  path, _ = written
  text = path.read_text()
  for heading in ("# Shapes benchmark", "## Compositional accuracy", "## Plan diagnostics",
                  "## Read by a second reader", "## Binding vs object count", "## Captioning", "## Editing", "## Samples",
                  "## Wall time and machine", "## Commands", "## Notes"):
    assert f"\n{heading}\n" in f"\n{text}", heading
  table = text.split("## Compositional accuracy")[1].split("##")[0]
  assert "| path | " + " | ".join(CATEGORIES) + " | overall |" in table
  assert "| transformer + renderer (n = 3) | 1.00 [0.44, 1.00] |" in table
  assert "| text-only (n = 3) | 0.00 [0.00, 0.56] |" in table
  assert "0.440 TFLOP/s" in text and "| ar | 30.0 |" in text and "**60.0**" in text
  assert "umm demo --workdir runs/demo" in text


def test_every_linked_png_exists_and_is_relative(written):
  path, paths = written
  links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", path.read_text())
  assert set(links) == {"binding_curve.png"} | {f"grid_{report.slug(n)}.png" for n in paths}
  for link in links:
    assert not link.startswith(("/", "http")) and (path.parent / link).stat().st_size > 1000


def test_json_holds_the_same_numbers(written):
  path, paths = written
  doc = json.loads((path.parent / "report.json").read_text())
  assert doc["paths"]["transformer + renderer"]["overall"] == 1.0
  assert doc["paths"]["text-only"]["curve"][-1] == paths["text-only"]["summary"]["curve"][-1]
  assert doc["captioning"][""]["accuracy"] == 1.0
  assert doc["second_reader"]["transformer + renderer"]["overall"] == 1.0
  assert doc["second_reader"]["text-only"]["overall"] == 0.0
  assert doc["second_reader"]["text-only"]["agreement"] == 1.0
  assert doc["editing"]["transformer + renderer"]["n"] == 8
  assert doc["stage_minutes"]["ar"] == 30.0 and doc["probe_tflops"] == 0.44
  lines = (path.parent / "results_text_only.jsonl").read_text().splitlines()
  assert len(lines) == len(paths["text-only"]["results"])


def test_grid_picks_each_category_and_every_curve_count(written):
  _, paths = written
  results = paths["text-only"]["results"]
  picked = report.sample_indices(results)
  assert len(picked) == 2 * len(CATEGORIES) + 2 <= report.MAX_GRID_IMAGES
  binding = {results[i]["num_objects"] for i in picked if results[i]["category"] == "binding"}
  assert binding == {2, 4, 8}


def test_a_wall_total_replaces_the_sum_of_overlapping_stages():
  from unified_mm.eval.report import _machine_section
  lines = "\n".join(_machine_section({"ar": 600.0, "renderer": 600.0,
                                      "ar + renderer (side by side, wall)": 600.0,
                                      "whole job (wall)": 900.0}, 0.165))
  assert "**total**" not in lines and "| whole job (wall) | 15.0 |" in lines
  assert "0.165 TFLOP/s" in lines


def test_the_whole_job_is_normalised_to_the_budget_probe():
  # 30 wall minutes on a machine half as fast as the reference are 15 reference minutes.
  lines = report._machine_section({"ar": 1500.0, "whole job (wall)": 1800.0}, 0.1)
  assert "Whole job normalised to a 0.2 TFLOP/s probe: 15.0 minutes." in lines
  assert not any("normalised" in line for line in report._machine_section({"ar": 60.0}, 0.1))
