"""`umm bench train`: times the trainer's own jitted step and reports MFU.

The step is the generic trainer's (`unified_mm.train.step.make_train_step`,
state planned by `unified_mm.train.trainer.plan_state`, donated state), so the
figure is what `umm train` runs. Batches are made before timing (data
generation is not part of the step). Model FLOPs come from the task
(`task.flops_per_step`: exact matmul + attention count, fwd + bwd).
"""

from __future__ import annotations

import statistics
import time

import jax

from unified_mm.bench.matmul import matmul_tflops
from unified_mm.parallel.mesh import make_mesh, mesh_shape
from unified_mm.parallel.sharding import activate, named_sharding, rules_from_config
from unified_mm.tasks import make_task
from unified_mm.train.step import jit_train_step, make_train_step
from unified_mm.train.trainer import plan_state


def _put(batch, shardings):
  return {k: jax.device_put(v, shardings[k]) for k, v in batch.items()}


def bench_train(config, *, steps: int = 4, warmup: int = 1, log=print) -> dict:
  """Compiles and runs `warmup + steps` train steps; returns the figures."""
  task = make_task(config)
  mesh, rules = make_mesh(config.mesh), rules_from_config(config.rules)
  batch_size = int(config.train.batch_size)
  shardings = {k: named_sharding(mesh, axes, rules) for k, axes in task.batch_axes().items()}
  data = task.make_data(0, 1, batch_size)
  batches = [_put(next(data), shardings) for _ in range(warmup + steps)]

  plan = plan_state(task, config, mesh, rules)
  with activate(mesh, rules):
    state = jax.jit(plan.init_fn, out_shardings=plan.shardings)()
    step_fn = jit_train_step(
        make_train_step(task, plan.model_def, plan.tx, plan.schedule, seed=config.seed,
                        grad_accum_steps=config.train.grad_accum_steps),
        plan.shardings, shardings)
    t = time.perf_counter()
    compiled = step_fn.lower(state, batches[0]).compile()
    log(f"compiled the train step in {time.perf_counter() - t:.1f}s on mesh {mesh_shape(mesh)}")
    peak_before = matmul_tflops()
    times = []
    for i, batch in enumerate(batches):
      t = time.perf_counter()
      state, metrics = compiled(state, batch)
      loss = float(metrics["loss"])  # blocks on the step
      if i >= warmup:
        times.append(time.perf_counter() - t)
        log(f"step {i - warmup}: {times[-1] * 1e3:.0f} ms  loss {loss:.3f}")
    peak_after = matmul_tflops()

  step_s = statistics.median(times)
  tokens = task.tokens_in(batches[0])
  peak = max(peak_before, peak_after)  # the quieter of the two measurements
  result = {
      "config": config.get("name", config.stage),
      "devices": len(mesh.devices.flat),
      "batch_size": batch_size,
      "tokens_per_step": tokens,
      "step_ms": round(step_s * 1e3, 1),
      "tokens_per_s": round(tokens / step_s, 1),
      "model_tflops_per_s": None,
      "matmul_peak_tflops_per_s": round(peak, 4),
      "mfu": None,
  }
  if hasattr(task, "flops_per_step"):
    flops = task.flops_per_step(batch_size)
    result["model_tflops_per_step"] = round(flops / 1e12, 4)
    result["model_tflops_per_s"] = round(flops / step_s / 1e12, 4)
    result["mfu"] = round(flops / step_s / 1e12 / peak, 4)
  return result
