"""`umm eval --workdir ROOT --sweep experiments/sweeps/<name>.py[:arg] --out DIR [--checkpoints latest|all|S1,S2] [--transformer ar|ar_rl] [--mesh config|fsdp=4,tensor=2]`

Writes DIR/results.{jsonl,csv,md,png}, DIR/grids/*.png and DIR/tb/, one row
per (AR checkpoint, sampling setting). Prints the Markdown table. The swept
transformer is the post-trained one (ROOT/ar_rl) when the root has it;
`--transformer ar` sweeps the pre-trained stage instead. `--mesh` restores every
stage sharded as `umm generate --mesh` does (a 7B transformer does not fit one
device); the default is one device, replicated.

A missing sweep file, a run root without a stage, or --checkpoints naming
steps the root does not hold is one line and exit code 2, before any
benchmark runs.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

from unified_mm.cli.commands.generate import add_mesh_argument, mesh_arg
from unified_mm.cli.main import UsageError

HELP = "Evaluation sweep: checkpoints x sampling settings on the shapes benchmark."


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="run root holding tokenizer/, ar/, renderer/")
  parser.add_argument("--sweep", required=True, help="experiments/sweeps/<name>.py[:arg]")
  parser.add_argument("--out", required=True, help="output directory")
  parser.add_argument("--checkpoints", default="latest", help="latest | all | comma-separated steps")
  parser.add_argument("--transformer", choices=("ar", "ar_rl"), default="",
                      help="the transformer stage to sweep (default: ar_rl when the root has it)")
  add_mesh_argument(parser)


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


def _check_inputs(args) -> None:
  """The run root's stages and the asked checkpoints, before the sweep's first load."""
  which = args.checkpoints
  if which not in ("latest", "all") and not all(s.strip().isdigit() for s in which.split(",")):
    raise UsageError(f"--checkpoints {which}: give latest, all, or steps such as 1000,2000")
  from unified_mm.generate.stages import missing_stage, transformer_dir  # noqa: PLC0415
  problem = missing_stage(args.workdir, ("tokenizer", args.transformer or "ar", "renderer"))
  if problem:
    raise UsageError(problem)
  import logging  # noqa: PLC0415

  from unified_mm.eval.sweep import select_steps  # noqa: PLC0415
  absl = logging.getLogger("absl")
  level = absl.level
  absl.setLevel(logging.ERROR)  # Orbax warns that a read-only manager is read-only
  try:
    root = pathlib.Path(args.workdir)
    select_steps(transformer_dir(root, args.transformer), which)
  except ValueError as e:  # steps the root does not hold
    raise UsageError(str(e)) from None
  finally:
    absl.setLevel(level)


def run(args) -> int:
  sweep = load_sweep(args.sweep, args.overrides)
  mesh = mesh_arg(args)
  _check_inputs(args)

  from unified_mm.eval.sweep import run_sweep  # noqa: PLC0415
  from unified_mm.eval.sweep_report import SweepReport  # noqa: PLC0415

  report = SweepReport(args.out)
  try:
    for row in run_sweep(args.workdir, sweep, args.out, args.checkpoints, args.transformer,
                         mesh=mesh):
      report.add(row)
      print(f"checkpoint {row['checkpoint']} setting {row['setting']}: "
            f"overall {row.get('overall', 0.0):.3f}", file=sys.stderr)
  finally:
    report.close()
  sys.stdout.write((pathlib.Path(args.out) / "results.md").read_text()
                   if report.rows else "no rows\n")
  return 0
