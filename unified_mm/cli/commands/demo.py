"""`umm demo --workdir ROOT [--scale S] [--baseline]`: the whole system on the shapes world.

Trains the three stages into one run root, each resuming if interrupted:
ROOT/tokenizer (the image tokenizer; on a host without accelerators its
process gets one XLA CPU device per core and splits the batch over them),
then ROOT/ar (the unified transformer, on the tokenizer's codes) and ROOT/renderer (the latent diffusion renderer, on
its latents; the `renderer_layout` variant, which draws from the plan the
transformer writes) side by side, then ROOT/ar_rl (the transformer's plain-path
image codes post-trained with GRPO against the drawn and analyzed image,
experiments/shapes.py:ar_grpo_codes, docs/rl.md).
Then it runs the benchmark on every path with the post-trained transformer
(planned through the renderer, planned and plain through the preview decoder
of the codes; eval/shapes_benchmark.py) with captioning and editing, and
writes ROOT/report.md (eval/report.py) with the stage wall times and the
machine's matmul probe (the larger of two, at the start and after training).

`--baseline` also trains the text-only renderer (experiments/shapes.py:
renderer_text_only) into ROOT/renderer_text_only with as many training FLOPs
as the transformer and renderer together (XLA's count of each compiled step),
and the report includes it. `--scale 0.1` shortens every stage ten-fold (a
smoke run; images will be poor). `--config.<stage>.<key>=value` overrides one
stage's config (by its variant name in experiments/shapes.py), e.g.
`--config.ar.train.batch_size=8`.

Signals: SIGTERM or Ctrl-C ends the whole job. Every stage then training gets
SIGTERM, saves its current step and stops; the demo prints one line naming
each stage and step and exits 75 (PREEMPTED_EXIT_CODE, as `umm train` does);
the same command resumes those stages. A stage that stops early on its own
stops its sibling the same way. No stage starts on an unfinished upstream.

Provenance: the transformer and the renderers record the tokenizer checkpoint
they started from (ROOT/<stage>/upstream.json, train/provenance.py). When a
re-run finds the tokenizer's latest checkpoint differs from a stage's record
(or a stage with checkpoints but no record), the demo refuses, naming both,
exit code 2; `--retrain-changed` moves such a stage aside (ROOT/<stage>.stale)
and retrains it.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import pathlib
import shlex
import sys
import time

from unified_mm.generate.stages import POST_TRAINED, STAGE_VARIANTS

HELP = "Train tokenizer -> transformer -> renderer on the shapes world, then benchmark and report."

# (variant of experiments/shapes.py, workdir under ROOT), in training order, from the
# one table of which variant trains which workdir. The transformer and the renderer
# read only the tokenizer: they train side by side. GRPO (on the transformer's codes,
# drawn by the tokenizer's preview) comes after both.
STAGES = tuple((STAGE_VARIANTS[workdir], workdir)
               for workdir in ("tokenizer", "ar", "renderer", POST_TRAINED))
GRPO = STAGE_VARIANTS[POST_TRAINED]
SIDE_BY_SIDE = ("ar", "renderer_layout")
# XLA:CPU runs one device's convolutions on a thread pool that two cores fill only
# 1.4x (the tokenizer's step: 281 ms on one core, 202 ms on two). Split into one
# single-device share of the batch per core, data-parallel, the step takes 157 ms
# (docs/quality.md, "The tokenizer on one CPU device per core"). So on a host without
# accelerators these stages, which train alone, get one XLA CPU device per core. The
# side-by-side stages already fill both cores, and GRPO's step, mostly latency-bound
# rollouts, gained under 5%.
DEVICE_PER_CORE = ("tokenizer",)
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
  parser.add_argument("--binding-counts", default="2,4,6,8",
                      help="object counts of the binding curve (the transformer's scenes hold "
                           "at most 6; the world places up to 25)")
  parser.add_argument("--retrain-changed", action="store_true",
                      help="retrain a stage whose upstream (the tokenizer) changed since it "
                           "was trained, moving the old run to ROOT/<stage>.stale")


def _stage_config(stage: str, root: pathlib.Path, scale: float, overrides: list[str],
                  steps: int | None = None):
  from unified_mm.config.loading import ConfigError, apply_overrides, load_config  # noqa: PLC0415
  experiments = pathlib.Path(__file__).resolve().parents[3] / "experiments" / "shapes.py"
  config = load_config(f"{experiments}:{stage}")
  steps = steps or max(10, int(config.train.steps * scale))
  linked = [] if stage == "tokenizer" else [f"data.image_tokenizer_dir={root / 'tokenizer'}"]
  # Checkpoints twice per stage (resume); the stage's evaluators once, at its end,
  # except GRPO's: its evaluator is the benchmark, which follows.
  evals = 0 if stage == GRPO else steps
  if stage == GRPO:
    linked.append(f"ckpt.init_from={root / 'ar'}")  # its start and its KL reference
  config = apply_overrides(config, [f"train.steps={steps}",
                                    f"ckpt.save_every_steps={max(steps // 2, 1)}",
                                    f"train.eval_every_steps={evals}", *linked])
  try:
    return apply_overrides(config, _stage_overrides(stage, overrides), flag=f"--config.{stage}.")
  except ConfigError as e:
    if stage == GRPO and str(e).startswith(f"--config.{GRPO}.model"):
      raise ConfigError(f"{e}; GRPO's model is its ar run's: set it with "
                        "--config.ar.model.<key>") from None
    raise


def _split_stage(item: str) -> tuple[str, str]:
  """`--config.ar.train.steps=3` -> ("ar", "train.steps=3"); ("ar", "") when no key follows."""
  name, eq, value = item.removeprefix("--config.").partition("=")
  stage, _, key = name.partition(".")
  return stage, f"{key}{eq}{value}" if key else ""


def _stage_overrides(stage: str, overrides: list[str]) -> list[str]:
  """`--config.<stage>.a.b=v` applies `a.b=v` to that stage only."""
  return [rest for name, rest in map(_split_stage, overrides) if name == stage and rest]


def check_override_stages(overrides: list[str]) -> None:
  """Every override names one of the demo's stages first: one that names none
  (`--config.model.d_model=384`) would otherwise be dropped without a word."""
  from unified_mm.config.loading import ConfigError  # noqa: PLC0415
  stages = [stage for stage, _ in (*STAGES, BASELINE)]
  for item in overrides:
    first, rest = _split_stage(item)  # the split _stage_overrides applies: what it drops fails here
    if first in stages and rest:
      continue
    near = difflib.get_close_matches(first, stages, n=1)
    why = (f"'{first}' names no key" if first in stages else
           f"'{first}' is not one" + (f" (did you mean '{near[0]}'?)" if near else ""))
    raise ConfigError(f"{item}: `umm demo` overrides name their stage first, "
                      f"--config.<stage>.<key>=VALUE with <stage> one of "
                      f"{', '.join(stages)}; {why}")


class Preempted(Exception):
  """The job stopped on a signal; every stage in training saved its checkpoint."""

  def __init__(self, stopped: dict[str, int], completed: list[str]):
    super().__init__(f"stopped: {stopped}, completed: {completed}")
    self.stopped = stopped      # {workdir name: its train.steps}
    self.completed = completed  # workdir names of the stages trained to the end


def cpu_devices(stage: str, config) -> int:
  """XLA CPU devices for `stage`'s process: one per core (the most that divide its
  batch) for a DEVICE_PER_CORE stage on a host without accelerators whose mesh
  takes every device for data (the preset's); 0 (XLA's default, one) otherwise,
  and when XLA_FLAGS already forces a count (the tests' 8)."""
  import jax  # noqa: PLC0415

  from unified_mm.parallel.mesh import MESH_AXES  # noqa: PLC0415
  mesh = config.mesh
  if (stage not in DEVICE_PER_CORE or jax.default_backend() != "cpu"
      or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", "")
      or int(mesh.data) != -1 or any(int(mesh[a]) != 1 for a in MESH_AXES if a != "data")):
    return 0
  usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None  # not on macOS
  cores = len(usable) if usable is not None else (os.cpu_count() or 1)
  batch_size = int(config.train.batch_size)
  n = max(d for d in range(1, cores + 1) if batch_size % d == 0)
  return n if n > 1 else 0


def _stage_process(config, workdir, queue, devices: int = 0) -> None:
  """One stage in a process of its own: puts (workdir name, wall seconds) on
  `queue`; exits PREEMPTED_EXIT_CODE when a signal stopped it early (saved).
  `devices` > 0: that many XLA CPU devices (set before JAX starts its backend)."""
  from unified_mm.cli.commands.train import _setup_logging, train_stage  # noqa: PLC0415
  _setup_logging("INFO")  # before Orbax loads: absl's first log line configures logging otherwise
  import jax  # noqa: PLC0415
  if devices:  # as parallel/distributed.py gives a rehearsal's processes theirs
    jax.config.update("jax_num_cpu_devices", devices)

  from unified_mm.train.preemption import PREEMPTED_EXIT_CODE  # noqa: PLC0415
  t0 = time.perf_counter()
  state = train_stage(config, workdir)
  queue.put((pathlib.Path(workdir).name, time.perf_counter() - t0))
  if int(jax.device_get(state.step)) < int(config.train.steps):
    sys.exit(PREEMPTED_EXIT_CODE)


def train_side_by_side(jobs: list[tuple[object, pathlib.Path, int]], stop) -> dict[str, float]:
  """Trains stages (config, workdir, XLA CPU devices or 0) in parallel processes
  (spawned: JAX does not survive a fork), the demo's own process only watching;
  {workdir name: wall seconds}.

  A signal to the demo (`stop`, a PreemptionFlag) is passed on as SIGTERM to
  every stage still training, and so is any stage ending early: each saves and
  stops, and the job raises Preempted. A stage that failed (not on a signal)
  fails the demo, naming it."""
  import multiprocessing  # noqa: PLC0415

  from unified_mm.train.preemption import PREEMPTED_EXIT_CODE  # noqa: PLC0415
  ctx = multiprocessing.get_context("spawn")
  queue = ctx.Queue()
  procs = {pathlib.Path(w).name: ctx.Process(target=_stage_process, args=(c, w, queue, n))
           for c, w, n in jobs}
  totals = {pathlib.Path(workdir).name: int(config.train.steps) for config, workdir, _ in jobs}
  for p in procs.values():
    p.start()
  stopping = False
  while any(p.is_alive() for p in procs.values()):
    if not stopping and (stop.requested() or any(p.exitcode for p in procs.values())):
      stopping = True  # the first sign is enough: the siblings save too, then the job ends
      for p in procs.values():
        if p.is_alive():
          p.terminate()  # SIGTERM: the stage's trainer saves its current step
    time.sleep(0.2)
  codes = {name: p.exitcode for name, p in procs.items()}
  # A stage signalled before its loop began dies of the signal: nothing new to save.
  failed = [n for n, c in codes.items()
            if c not in (0, PREEMPTED_EXIT_CODE) and not stop.requested()]
  if failed:
    raise RuntimeError(f"stage(s) {failed} failed; see the log above (each resumes on rerun)")
  seconds = dict(queue.get(timeout=30) for c in codes.values() if c in (0, PREEMPTED_EXIT_CODE))
  stopped = {n: totals[n] for n, c in codes.items() if c != 0}
  if stopped:
    raise Preempted(stopped, [n for n, c in codes.items() if c == 0])
  return seconds


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
  for stage in SIDE_BY_SIDE:  # pre-training; GRPO's rollouts are inference, not counted
    c = _stage_config(stage, root, args.scale, args.overrides)
    spent[stage] = step_flops(c) * int(c.train.steps)
  per_step = step_flops(_stage_config(BASELINE[0], root, args.scale, args.overrides))
  steps = max(10, int(round(sum(spent.values()) / per_step)))
  log.info("baseline: %.3g FLOPs (%s) / %.3g per step = %d steps", sum(spent.values()),
           " + ".join(f"{k} {v:.3g}" for k, v in spent.items()), per_step, steps)
  return steps, {**spent, "text-only": steps * per_step}


def _check_upstreams(config, workdir: pathlib.Path, retrain: bool, log) -> None:
  """Refuses (UpstreamChanged) a stage whose checkpoints were trained from
  another tokenizer checkpoint than the one ROOT/tokenizer now holds; with
  `retrain`, moves it aside to start over instead."""
  from unified_mm.train.provenance import UpstreamChanged, reconcile  # noqa: PLC0415
  why = reconcile(config, workdir, unrecorded="refuse")  # a demo root never predates its records
  if why is None:
    return
  if not retrain:
    raise UpstreamChanged(f"{why}: re-run with --retrain-changed to retrain {workdir.name} "
                          f"(the old run moves to {workdir.name}.stale), or delete {workdir}")
  aside = workdir.with_name(workdir.name + ".stale")
  n = 1
  while aside.exists():
    n += 1
    aside = workdir.with_name(f"{workdir.name}.stale-{n}")
  workdir.rename(aside)
  log.warning("%s: retraining %s (the old run is now %s)", why, workdir.name, aside)


def _train_stages(root: pathlib.Path, args, stop, log) -> tuple[dict[str, float], list[str]]:
  """Trains every stage in order, each resuming; ({name: wall seconds}, report notes).
  Raises Preempted (after the stages in training saved) when `stop` is set."""
  times, notes, completed = {}, [], []
  configs, workdirs, devices = {}, dict(STAGES), {}
  for stage, workdir in STAGES:
    configs[stage] = _stage_config(stage, root, args.scale, args.overrides)
    configs[stage].lock()
    devices[stage] = cpu_devices(stage, configs[stage])
    split = f" (data-parallel over {devices[stage]} XLA CPU devices)" if devices[stage] else ""
    log.info("stage %s: %d steps -> %s%s", stage, configs[stage].train.steps, root / workdir,
             split)
  groups = []
  for stage, _ in STAGES:
    if stage not in SIDE_BY_SIDE:
      groups.append([stage])
    elif stage == SIDE_BY_SIDE[0]:
      groups.append(list(SIDE_BY_SIDE))
  for group in groups:
    if stop.requested():  # between stages: nothing in training to save
      raise Preempted({}, completed)
    for stage in group:
      _check_upstreams(configs[stage], root / workdirs[stage], args.retrain_changed, log)
    t0 = time.perf_counter()
    times |= _train_group([(configs[s], root / workdirs[s], devices[s]) for s in group], stop,
                          completed)
    if len(group) > 1:
      times[" + ".join(group) + " (side by side, wall)"] = time.perf_counter() - t0
    completed += [workdirs[s] for s in group]
  if args.baseline:
    steps, flops = _baseline_steps(root, args, log)
    notes.append("Training FLOPs (XLA's count of each compiled step x steps): "
                 + ", ".join(f"{k} {v:.3g}" for k, v in flops.items())
                 + f"; the text-only renderer trains {steps} steps to match "
                 + " + ".join(SIDE_BY_SIDE) + ".")
    config = _stage_config(BASELINE[0], root, args.scale, args.overrides, steps)
    config.lock()
    if stop.requested():
      raise Preempted({}, completed)
    _check_upstreams(config, root / BASELINE[1], args.retrain_changed, log)
    times |= _train_group([(config, root / BASELINE[1], 0)], stop, completed)
  return times, notes


def _train_group(jobs, stop, completed: list[str]) -> dict[str, float]:
  """train_side_by_side, its Preempted also naming the stages `completed` before."""
  try:
    return train_side_by_side(jobs, stop)
  except Preempted as e:
    raise Preempted(e.stopped, completed + e.completed) from None


def _preempted_line(root: pathlib.Path, e: Preempted, command: str) -> str:
  """One line: which stage stopped at which step, and how to resume."""
  from unified_mm.train.preemption import PREEMPTED_EXIT_CODE  # noqa: PLC0415
  from unified_mm.train.provenance import latest_step  # noqa: PLC0415
  parts = []
  for name, total in e.stopped.items():
    step = latest_step(root / name)
    parts.append(f"{name} stopped at step {step} of {total}" if step is not None
                 else f"{name} stopped before its first checkpoint")
  if parts:
    where = " and ".join(parts) + " (saved)"
  elif e.completed:  # stopped between stages
    where = f"after {', '.join(e.completed)} completed"
  else:
    where = "before any stage started"
  return (f"umm demo: preempted: {where}; re-run `{command}` to resume "
          f"(exit code {PREEMPTED_EXIT_CODE})")


def _counts(text: str) -> tuple[int, ...]:
  from unified_mm.cli.main import UsageError  # noqa: PLC0415
  from unified_mm.eval.benchmark import MAX_OBJECTS_64  # noqa: PLC0415
  try:
    counts = tuple(int(c) for c in text.split(","))
  except ValueError:
    counts = ()
  if not counts or min(counts) < 2 or max(counts) > MAX_OBJECTS_64:
    raise UsageError(f"--binding-counts {text}: give object counts from 2 to {MAX_OBJECTS_64}, "
                     "such as 2,4,6,8")
  return counts


def run(args) -> int:
  from unified_mm.cli.commands.train import _setup_logging  # noqa: PLC0415
  _setup_logging("INFO")
  from unified_mm.bench.matmul import MatmulProbe  # noqa: PLC0415
  from unified_mm.eval.report import write_report  # noqa: PLC0415
  from unified_mm.eval.shapes_benchmark import run_benchmark  # noqa: PLC0415
  from unified_mm.train.preemption import PREEMPTED_EXIT_CODE, PreemptionFlag  # noqa: PLC0415
  from unified_mm.train.provenance import UpstreamChanged  # noqa: PLC0415

  started = time.perf_counter()
  binding_counts = _counts(args.binding_counts)  # a typo fails now, not after training
  check_override_stages(args.overrides)
  root = pathlib.Path(args.workdir)
  log = logging.getLogger("unified_mm.demo")
  command = "umm demo " + shlex.join(sys.argv[2:] if len(sys.argv) > 2 else [])
  # From here to the end of training a signal only sets `stop`: the stages save first.
  with PreemptionFlag(on_signal="stopping the job once every stage in training has saved") as stop:
    matmul = MatmulProbe()  # compiled once, sampled again after training
    probe = matmul.best()
    log.info("matmul probe: %.3f TFLOP/s (XLA f32, 4 chained 2048^2 matmuls)", probe)
    try:
      times, notes = _train_stages(root, args, stop, log)
    except Preempted as e:
      print(_preempted_line(root, e, command), file=sys.stderr)
      return PREEMPTED_EXIT_CODE
    except UpstreamChanged as e:
      print(f"umm demo: upstream changed: {e}", file=sys.stderr)
      return 2
  # A shared machine's matmul throughput dips for seconds at a time (0.10 against 0.19
  # TFLOP/s, best of 3, minutes apart on one machine): a second probe after training,
  # and the larger of the two is the machine's (the conservative normalisation).
  probes = (probe, matmul.best())
  probe = max(probes)
  notes.append("Matmul probe at the job's start and after training: "
               + " and ".join(f"{p:.3f}" for p in probes)
               + " TFLOP/s; the larger is the machine's.")
  log.info("matmul probe after training: %.3f TFLOP/s", probes[1])
  t0 = time.perf_counter()
  out = run_benchmark(root, per_category=args.prompts_per_category,
                      binding_counts=binding_counts,
                      caption_scenes=args.caption_scenes, edit_scenes=args.edit_scenes,
                      seed=args.seed)
  times["benchmark"] = time.perf_counter() - t0
  times["whole job (wall)"] = time.perf_counter() - started
  report = write_report(root, paths=out["paths"], captioning=out["captioning"],
                        editing=out["editing"], stage_times=times, probe_tflops=probe,
                        commands=[command], extra_notes=notes)
  overall = {name: round(p["summary"]["overall"], 3) for name, p in out["paths"].items()}
  print(json.dumps({"root": str(root), "report": str(report), "overall": overall,
                    "minutes": round(times["whole job (wall)"] / 60, 1)}), file=sys.stdout)
  return 0
