"""`umm eval --workdir ROOT --sweep experiments/sweeps/<name>.py[:arg] --out DIR [--checkpoints latest|all|S1,S2]`

Writes DIR/results.{jsonl,csv,md,png}, DIR/grids/*.png and DIR/tb/, one row
per (AR checkpoint, sampling setting). Prints the Markdown table.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

HELP = "Evaluation sweep: checkpoints x sampling settings on the shapes benchmark."


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="run root holding tokenizer/, ar/, renderer/")
  parser.add_argument("--sweep", required=True, help="experiments/sweeps/<name>.py[:arg]")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--checkpoints", default="latest", help="latest | all | comma-separated steps")


def load_sweep(spec: str, overrides: list[str]):
  from unified_mm.config.loading import ConfigError, apply_overrides  # noqa: PLC0415
  path, _, arg = spec.partition(".py:")
  path = path if path.endswith(".py") else path + ".py"
  if not pathlib.Path(path).exists():
    raise ConfigError(f"--sweep={spec}: no such file {path}")
  module_spec = importlib.util.spec_from_file_location("umm_sweep", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return apply_overrides(module.get_sweep(arg), overrides)


def run(args) -> int:
  from unified_mm.eval.sweep import run_sweep  # noqa: PLC0415
  from unified_mm.eval.sweep_report import SweepReport  # noqa: PLC0415

  sweep = load_sweep(args.sweep, args.overrides)
  report = SweepReport(args.out)
  try:
    for row in run_sweep(args.workdir, sweep, args.out, args.checkpoints):
      report.add(row)
      print(f"checkpoint {row['checkpoint']} setting {row['setting']}: "
            f"overall {row.get('overall', 0.0):.3f}", file=sys.stderr)
  finally:
    report.close()
  sys.stdout.write((pathlib.Path(args.out) / "results.md").read_text()
                   if report.rows else "no rows\n")
  return 0
