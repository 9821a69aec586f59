"""`umm bench {train,decode} --config ...`: the speed figures in docs/.

    umm bench train  --config experiments/lm.py:ref       # train-step throughput and MFU
    umm bench train  --config experiments/shapes.py:ar --against-xla-defaults
    umm bench decode --config experiments/shapes.py:ar    # KV-cache vs recompute, one 256-code image

The last line printed is one JSON object for scripts: for `train`
(tokens_per_s, step_ms, model_tflops_per_s, matmul_peak_tflops_per_s, mfu,
...; docs/bench_train.md), for `decode` (cached_ms, recompute_ms,
speedup_vs_recompute, speedup_vs_prefix_estimate, ...; docs/bench_decode.md).
"""

from __future__ import annotations

import json

HELP = "benchmark the train step (MFU) or KV-cache decoding (vs recompute)"


def add_arguments(parser) -> None:
  parser.add_argument("what", choices=["train", "decode"], help="what to benchmark")
  parser.add_argument("--config", required=True, help="experiments/<file>.py[:<arg>]")
  parser.add_argument("--steps", type=int, default=4, help="train: timed steps (median is reported)")
  parser.add_argument("--warmup", type=int, default=1, help="train: untimed steps after compiling")
  parser.add_argument("--against-xla-defaults", action="store_true",
                      help="train: also time the step compiled with XLA's default options, "
                           "alternating with it step for step (train/compile_options.py)")
  parser.add_argument("--image-tokens", type=int, default=256, help="decode: tokens generated")
  parser.add_argument("--prompt-len", type=int, default=32, help="decode: prompt tokens")
  parser.add_argument("--batch-size", type=int, default=8, help="decode: rows decoded at once")
  parser.add_argument("--repeats", type=int, default=3, help="decode: timed runs per path")


def run(args) -> int:
  from unified_mm.config.loading import ConfigError, load_config
  from unified_mm.config.validation import validate

  import jax
  config = load_config(args.config, args.overrides)
  if args.what == "decode":
    from unified_mm.bench.decode import bench_decode
    if config.stage not in ("lm", "ar"):
      raise ConfigError(f"stage={config.stage!r}: `umm bench decode` needs a transformer "
                        "config (stage lm or ar)")
    result = bench_decode(config.model, image_tokens=args.image_tokens,
                          prompt_len=args.prompt_len, batch_size=args.batch_size,
                          repeats=args.repeats, seed=int(config.seed))
  else:
    from unified_mm.bench.train import bench_train
    validate(config, jax.device_count())
    result = bench_train(config, steps=args.steps, warmup=args.warmup,
                         against_xla_defaults=args.against_xla_defaults)
  result["config"] = args.config
  print(json.dumps(result), flush=True)
  return 0
