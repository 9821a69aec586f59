"""Sweep rows become JSONL, CSV, Markdown, a PNG plot and TensorBoard scalars."""

import csv
import json

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from unified_mm.cli.commands.eval import load_sweep
from unified_mm.eval.sweep_report import SweepReport


def _rows():
  return [
      {"checkpoint": 100, "setting": 0, "cfg": 1.0, "steps": 4, "overall": 0.25,
       "single/accuracy": 0.5, "binding/accuracy_at_2": 0.75, "binding/accuracy_at_4": 0.5,
       "images_per_s": 3.0, "grid": "grids/a.png"},
      {"checkpoint": 200, "setting": 0, "cfg": 1.0, "steps": 4, "overall": 0.5,
       "single/accuracy": 1.0, "binding/accuracy_at_2": 1.0, "binding/accuracy_at_4": 0.25,
       "images_per_s": 3.5, "grid": "grids/b.png"},
  ]


def test_report_files(tmp_path):
  report = SweepReport(tmp_path)
  for row in _rows():
    report.add(row)
  report.close()
  lines = (tmp_path / "results.jsonl").read_text().splitlines()
  assert [json.loads(l)["checkpoint"] for l in lines] == [100, 200]
  with open(tmp_path / "results.csv") as f:
    table = list(csv.DictReader(f))
  assert float(table[1]["overall"]) == 0.5
  md = (tmp_path / "results.md").read_text().splitlines()
  assert md[0].startswith("| checkpoint | setting") and len(md) == 4
  assert "grids/a.png" not in md[2]
  assert (tmp_path / "results.png").stat().st_size > 1000
  acc = EventAccumulator(str(tmp_path / "tb"))
  acc.Reload()
  overall = acc.Scalars("sweep/setting0/overall")
  assert [(e.step, e.value) for e in overall] == [(100, 0.25), (200, 0.5)]


def test_sweep_files_load_with_overrides():
  sweep = load_sweep("experiments/sweeps/shapes_sampling.py", ["--config.prompts_per_category=2"])
  assert sweep.prompts_per_category == 2
  assert len(sweep.settings) == 16
  assert {"cfg_scale", "plan_temperature", "steps", "chunks"} <= set(sweep.settings[0])
  quick = load_sweep("experiments/sweeps/shapes_sampling.py:quick", [])
  assert len(quick.settings) == 2
