"""`umm demo --workdir ROOT [--scale S] [--baseline]`: the whole system on the shapes world.

Trains the three stages into one run root, each resuming if interrupted:
ROOT/tokenizer (the image tokenizer), then ROOT/ar (the unified transformer,
on the tokenizer's codes) and ROOT/renderer (the latent diffusion renderer, on
its latents; the `renderer_layout` variant, which draws from the plan the
transformer writes). Then it runs the benchmark on every path (planned through
the renderer, planned and plain through the preview decoder of the codes;
eval/shapes_benchmark.py) with captioning and editing, and writes
ROOT/report.md (eval/report.py) with the stage wall times and the machine's
matmul probe.

`--baseline` also trains the text-only renderer (experiments/shapes.py:
renderer_text_only) into ROOT/renderer_text_only with as many training FLOPs
as the transformer and renderer together (XLA's count of each compiled step),
and the report includes it. `--scale 0.1` shortens every stage ten-fold (a
smoke run; images will be poor). `--config.<stage>.<key>=value` overrides one
stage's config (by its variant name in experiments/shapes.py), e.g.
`--config.ar.train.batch_size=8`.
"""

from __future__ import annotations

import json
import logging
import pathlib
import shlex
import sys
import time

HELP = "Train tokenizer -> transformer -> renderer on the shapes world, then benchmark and report."

# (variant of experiments/shapes.py, workdir under ROOT), in training order. The
# transformer and the renderer read only the tokenizer: they train side by side.
STAGES = (("tokenizer", "tokenizer"), ("ar", "ar"), ("renderer_layout", "renderer"))
SIDE_BY_SIDE = ("ar", "renderer_layout")
BASELINE = ("renderer_text_only", "renderer_text_only")


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="run root (tokenizer/, ar/, renderer/)")
  parser.add_argument("--scale", type=float, default=1.0, help="multiplies every stage's steps")
  parser.add_argument("--baseline", action="store_true",
                      help="also train the text-only renderer at equal training FLOPs")
  parser.add_argument("--prompts-per-category", type=int, default=50)
  parser.add_argument("--caption-scenes", type=int, default=50)
  parser.add_argument("--edit-scenes", type=int, default=50)
  parser.add_argument("--seed", type=int, default=20_011, help="benchmark prompt seed")


def _stage_config(stage: str, root: pathlib.Path, scale: float, overrides: list[str],
                  steps: int | None = None):
  from unified_mm.config.loading import apply_overrides, load_config  # noqa: PLC0415
  experiments = pathlib.Path(__file__).resolve().parents[3] / "experiments" / "shapes.py"
  config = load_config(f"{experiments}:{stage}")
  steps = steps or max(10, int(config.train.steps * scale))
  linked = [] if stage == "tokenizer" else [f"data.image_tokenizer_dir={root / 'tokenizer'}"]
  # Checkpoints twice per stage (resume); the stage's evaluators once, at its end.
  return apply_overrides(config, [f"train.steps={steps}",
                                  f"ckpt.save_every_steps={max(steps // 2, 1)}",
                                  f"train.eval_every_steps={steps}", *linked,
                                  *_stage_overrides(stage, overrides)])


def _stage_overrides(stage: str, overrides: list[str]) -> list[str]:
  """`--config.<stage>.a.b=v` applies `a.b=v` to that stage only."""
  prefix = f"--config.{stage}."
  return [o[len(prefix):] for o in overrides if o.startswith(prefix)]


def _train_timed(config, workdir, queue=None) -> float:
  """Trains one stage; its wall time in seconds (also put on `queue` from a child process)."""
  from unified_mm.cli.commands.train import _setup_logging, train_stage  # noqa: PLC0415
  if queue is not None:
    _setup_logging("INFO")
  t0 = time.perf_counter()
  train_stage(config, workdir)
  seconds = time.perf_counter() - t0
  if queue is not None:
    queue.put((config.stage, seconds))
  return seconds


def train_side_by_side(jobs: list[tuple[object, pathlib.Path]]) -> dict[str, float]:
  """Trains independent stages in parallel processes (spawned: JAX does not survive a
  fork); {stage: wall seconds}. A failed stage fails the demo, naming it."""
  import multiprocessing  # noqa: PLC0415
  ctx = multiprocessing.get_context("spawn")
  queue = ctx.Queue()
  procs = [(config.stage, ctx.Process(target=_train_timed, args=(config, workdir, queue)))
           for config, workdir in jobs]
  for _, p in procs:
    p.start()
  for _, p in procs:
    p.join()
  failed = [stage for stage, p in procs if p.exitcode != 0]
  if failed:
    raise RuntimeError(f"stage(s) {failed} failed; see the log above (each resumes on rerun)")
  return dict(queue.get() for _ in procs)


def step_flops(config) -> float:
  """XLA's FLOP count of one compiled training step on this process's devices."""
  import jax  # noqa: PLC0415

  from unified_mm.plan.aot import compile_train_step  # noqa: PLC0415
  devices = jax.devices()[:1]
  c = config.copy_and_resolve_references()
  c.mesh.update(data=1, fsdp=1, tensor=1)
  return float(compile_train_step(c, devices).flops or 0.0)


def _baseline_steps(root: pathlib.Path, args, log) -> tuple[int, dict[str, float]]:
  """Steps of the text-only renderer that spend the transformer's + renderer's training FLOPs."""
  spent = {}
  for stage, _ in STAGES[1:]:
    c = _stage_config(stage, root, args.scale, args.overrides)
    spent[stage] = step_flops(c) * int(c.train.steps)
  per_step = step_flops(_stage_config(BASELINE[0], root, args.scale, args.overrides))
  steps = max(10, int(round(sum(spent.values()) / per_step)))
  log.info("baseline: %.3g FLOPs (%s) / %.3g per step = %d steps", sum(spent.values()),
           " + ".join(f"{k} {v:.3g}" for k, v in spent.items()), per_step, steps)
  return steps, {**spent, "text-only": steps * per_step}


def run(args) -> int:
  from unified_mm.cli.commands.train import _setup_logging  # noqa: PLC0415
  _setup_logging("INFO")
  from unified_mm.bench.matmul import matmul_tflops  # noqa: PLC0415
  from unified_mm.eval.report import write_report  # noqa: PLC0415
  from unified_mm.eval.shapes_benchmark import run_benchmark  # noqa: PLC0415

  started = time.perf_counter()
  root = pathlib.Path(args.workdir)
  log = logging.getLogger("unified_mm.demo")
  probe = matmul_tflops()
  log.info("matmul probe: %.3f TFLOP/s (XLA f32, 4 chained 2048^2 matmuls)", probe)
  times, notes = {}, []
  configs = {}
  for stage, workdir in STAGES:
    configs[stage] = _stage_config(stage, root, args.scale, args.overrides)
    configs[stage].lock()
    log.info("stage %s: %d steps -> %s", stage, configs[stage].train.steps, root / workdir)
  workdirs = dict(STAGES)
  for stage, _ in STAGES:
    if stage not in SIDE_BY_SIDE:
      times[stage] = _train_timed(configs[stage], root / workdirs[stage])
  t0 = time.perf_counter()
  times |= train_side_by_side([(configs[s], root / workdirs[s]) for s in SIDE_BY_SIDE])
  times[" + ".join(SIDE_BY_SIDE) + " (side by side, wall)"] = time.perf_counter() - t0
  if args.baseline:
    steps, flops = _baseline_steps(root, args, log)
    notes.append("Training FLOPs (XLA's count of each compiled step x steps): "
                 + ", ".join(f"{k} {v:.3g}" for k, v in flops.items())
                 + f"; the text-only renderer trains {steps} steps to match "
                 + " + ".join(SIDE_BY_SIDE) + ".")
    config = _stage_config(BASELINE[0], root, args.scale, args.overrides, steps)
    config.lock()
    times[BASELINE[0]] = _train_timed(config, root / BASELINE[1])
  t0 = time.perf_counter()
  out = run_benchmark(root, per_category=args.prompts_per_category,
                      caption_scenes=args.caption_scenes, edit_scenes=args.edit_scenes,
                      seed=args.seed)
  times["benchmark"] = time.perf_counter() - t0
  times["whole job (wall)"] = time.perf_counter() - started
  command = "umm demo " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [])
  report = write_report(root, paths=out["paths"], captioning=out["captioning"],
                        editing=out["editing"], stage_times=times, probe_tflops=probe,
                        commands=[command], extra_notes=notes)
  overall = {name: round(p["summary"]["overall"], 3) for name, p in out["paths"].items()}
  print(json.dumps({"root": str(root), "report": str(report), "overall": overall,
                    "minutes": round(times["whole job (wall)"] / 60, 1)}), file=sys.stdout)
  return 0
