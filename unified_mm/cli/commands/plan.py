"""`umm plan --config ... [--topology v5p-256]`: does it fit, and how fast will it be.

Prints the parameter count, FLOPs per token and per step (the benchmark's
counter), per-device memory (analytic, and XLA's from an ahead-of-time
compile of the real train step when libtpu is installed), whether that fits
the chip's HBM, and a step time at the given MFU. Exit code 1 when it does
not fit.
"""

from __future__ import annotations

import json
import sys

HELP = "Plan a run before booking a pod: params, FLOPs, per-device memory (AOT on TPU), step time."


def add_arguments(parser) -> None:
  parser.add_argument("--config", required=True, help="experiments/<file>.py[:<arg>]")
  parser.add_argument("--topology", default=None,
                      help="v5p-256, 2xv5p-256, v5e-16, v6e-256, v4-8, h100-16 "
                           "(default: the config's `topology`)")
  parser.add_argument("--mfu", type=float, default=0.4, help="model FLOPs utilisation assumed")
  parser.add_argument("--no-aot", action="store_true", help="analytic estimate only")
  parser.add_argument("--json", action="store_true", help="print the plan as JSON")


def run(args) -> int:
  import jax
  # The host only traces and compiles; the topology's TPUs are compile targets.
  # Keeping JAX on CPU also spares a TPU probe when libtpu is installed.
  jax.config.update("jax_platforms", "cpu")

  from unified_mm.config.loading import load_config
  from unified_mm.plan.hardware import TopologyError
  from unified_mm.plan.planner import make_plan, topology_for
  from unified_mm.plan.report import format_report

  config = load_config(args.config, args.overrides)
  try:
    topo = topology_for(config, args.topology)
  except TopologyError as e:
    print(f"umm plan: {e}", file=sys.stderr)
    return 2
  report = make_plan(config, args.config, topo, mfu=args.mfu, compile_aot=not args.no_aot)
  if args.json:
    print(json.dumps(report.to_json(), indent=1))
  else:
    sys.stdout.write(format_report(report))
  return 0 if report.fits else 1
