"""`umm bench train`: times the trainer's own jitted step and reports MFU.

The step is the generic trainer's (`unified_mm.train.step.make_train_step`,
state planned by `unified_mm.train.trainer.plan_state`, donated state), so the
figure is what `umm train` runs. Batches are made before timing (data
generation is not part of the step). The matmul reference is sampled right
after every timed step (best of 3 samples per step, median over steps), so
on a shared machine step and reference see the same load; the best sample
of all is reported too. It runs on every device of the step's mesh (one
matmul chain per device, summed), so MFU on N devices is against N devices'
peak and cannot exceed 1 by counting. Model FLOPs come from the task
(`task.flops_per_step`: exact matmul + attention count, fwd + bwd).

`against_xla_defaults` also compiles the step with XLA's default options (not
train/compile_options.py's) and times the two compiles step for step,
alternating in one process, so both see the same moments of a shared host:
separate runs of one step differ by more than the options do.
"""

from __future__ import annotations

import statistics
import time

import jax

from unified_mm.bench.matmul import MatmulProbe
from unified_mm.parallel.mesh import make_mesh, mesh_shape
from unified_mm.parallel.sharding import activate, named_sharding, rules_from_config
from unified_mm.tasks import make_task
from unified_mm.train.step import jit_train_step, make_train_step
from unified_mm.train.trainer import plan_state


def _put(batch, shardings):
  return {k: jax.device_put(v, shardings[k]) for k, v in batch.items()}


def bench_train(config, *, steps: int = 4, warmup: int = 1, probe_size: int = 2048,
                against_xla_defaults: bool = False, log=print) -> dict:
  """Compiles and runs `warmup + steps` train steps; returns the figures.

  `probe_size`: n of the reference's n x n matmuls (smaller only in tests).
  """
  task = make_task(config)
  mesh, rules = make_mesh(config.mesh), rules_from_config(config.rules)
  batch_size = int(config.train.batch_size)
  shardings = {k: named_sharding(mesh, axes, rules) for k, axes in task.batch_axes().items()}
  data = task.make_data(0, 1, batch_size)
  batches = [_put(next(data), shardings) for _ in range(warmup + steps)]

  plan = plan_state(task, config, mesh, rules)
  with activate(mesh, rules):
    init = jax.jit(plan.init_fn, out_shardings=plan.shardings)
    state = init()
    train_step = make_train_step(task, plan.model_def, plan.tx, plan.schedule, seed=config.seed,
                                 grad_accum_steps=config.train.grad_accum_steps)
    t = time.perf_counter()
    compiled = jit_train_step(train_step, plan.shardings, shardings).lower(
        state, batches[0]).compile()
    log(f"compiled the train step in {time.perf_counter() - t:.1f}s on mesh {mesh_shape(mesh)}")
    if against_xla_defaults:  # its own state: each compile donates the one it is given
      default_state = init()
      default_step = jit_train_step(train_step, plan.shardings, shardings,
                                    xla_defaults=True).lower(default_state, batches[0]).compile()
    probe = MatmulProbe(probe_size, devices=list(mesh.devices.flat))
    times, peaks, default_times = [], [], []
    for i, batch in enumerate(batches):
      t = time.perf_counter()
      state, metrics = compiled(state, batch)
      loss = float(metrics["loss"])  # blocks on the step
      step_time = time.perf_counter() - t
      if against_xla_defaults:
        t = time.perf_counter()
        default_state, default_metrics = default_step(default_state, batch)
        float(default_metrics["loss"])
        default_time = time.perf_counter() - t
      if i >= warmup:
        times.append(step_time)
        if against_xla_defaults:
          default_times.append(default_time)
        peaks.extend(probe.sample() for _ in range(3))  # the same moment's matmul speed
        log(f"step {i - warmup}: {times[-1] * 1e3:.0f} ms  loss {loss:.3f}  "
            f"matmul {max(peaks[-3:]) * 1e3:.1f} GFLOP/s" + (
                f"  (XLA defaults {default_times[-1] * 1e3:.0f} ms)" if default_times else ""))

  step_s = statistics.median(times)
  tokens = task.tokens_in(batches[0])
  # Per step the best of 3 matmul samples; across steps the median, like step_ms.
  per_step = [max(peaks[j:j + 3]) for j in range(0, len(peaks), 3)]
  peak = statistics.median(per_step)
  result = {
      "config": config.get("name", config.stage),
      "devices": len(mesh.devices.flat),
      "batch_size": batch_size,
      "tokens_per_step": tokens,
      "step_ms": round(step_s * 1e3, 1),
      "tokens_per_s": round(tokens / step_s, 1),
      "model_tflops_per_s": None,
      "matmul_devices": probe.num_devices,
      "matmul_peak_tflops_per_s": round(peak, 4),
      "matmul_best_tflops_per_s": round(max(peaks), 4),
      "mfu": None,
  }
  if default_times:
    default_s = statistics.median(default_times)
    result["xla_defaults_step_ms"] = round(default_s * 1e3, 1)
    result["step_ratio_vs_xla_defaults"] = round(step_s / default_s, 3)
  if hasattr(task, "flops_per_step"):
    flops = task.flops_per_step(batch_size)
    result["model_tflops_per_step"] = round(flops / 1e12, 4)
    result["model_tflops_per_s"] = round(flops / step_s / 1e12, 4)
    result["mfu"] = round(flops / step_s / 1e12 / peak, 4)
    result["mfu_vs_best_matmul"] = round(flops / step_s / 1e12 / max(peaks), 4)
  return result
