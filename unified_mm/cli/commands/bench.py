"""`umm bench train --config experiments/lm.py:ref`: throughput and MFU of the real train step.

The last line printed is one JSON object (tokens_per_s, step_ms,
model_tflops_per_s, matmul_peak_tflops_per_s, mfu, ...) for scripts.
"""

from __future__ import annotations

import json

HELP = "benchmark the train step against the machine's XLA matmul throughput"


def add_arguments(parser) -> None:
  parser.add_argument("what", choices=["train"], help="what to benchmark")
  parser.add_argument("--config", required=True, help="experiments/<file>.py[:<arg>]")
  parser.add_argument("--steps", type=int, default=4, help="timed steps (median is reported)")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps after compiling")


def run(args) -> int:
  from unified_mm.bench.train import bench_train
  from unified_mm.config.loading import load_config
  from unified_mm.config.validation import validate

  import jax
  config = load_config(args.config, args.overrides)
  validate(config, jax.device_count())
  result = bench_train(config, steps=args.steps, warmup=args.warmup)
  result["config"] = args.config
  print(json.dumps(result), flush=True)
  return 0
