"""Ahead-of-time compile of the trainer's real step against a TPU topology.

No TPU is needed: with `libtpu` installed, `get_topology_desc` describes the
chips of a slice (or several), and XLA's TPU compiler builds the very program
`umm train` would run there, then reports its per-device memory and cost.

The host platform stays CPU (`JAX_PLATFORMS=cpu`): the topology's devices are
only compile targets, so the AOT compile runs in the same process after the
CPU backend is up; no subprocess is needed. This module builds the step with
the trainer's own functions (abstract model, optimiser, state shardings,
`make_train_step`, `jit_train_step`), so what is compiled is what is trained.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import os
import re
import time

import jax

from unified_mm.plan.batch_shapes import abstract_batch
from unified_mm.plan.hardware import Topology

# libtpu looks for a TPU VM's metadata when it loads and prints warnings on a
# machine that is not one; these placeholders quiet it (the topology we compile
# for is passed explicitly, so they change nothing else). libtpu also takes a
# machine-wide lock (/tmp/libtpu_lockfile) meant for processes that drive real
# chips; compile-only processes may share the machine, so it is waived.
_QUIET_LIBTPU = {"TPU_ACCELERATOR_TYPE": "v5p-8", "TPU_WORKER_HOSTNAMES": "localhost",
                 "TPU_SKIP_MDS_QUERY": "1", "ALLOW_MULTIPLE_LIBTPU_LOAD": "1"}


def libtpu_available() -> bool:
  return importlib.util.find_spec("libtpu") is not None


@contextlib.contextmanager
def _quiet_env():
  saved = {k: os.environ.get(k) for k in _QUIET_LIBTPU}
  for k, v in _QUIET_LIBTPU.items():
    os.environ.setdefault(k, v)
  try:
    yield
  finally:
    for k, v in saved.items():
      if v is None:
        os.environ.pop(k, None)


def topology_devices(topo: Topology) -> list:
  """The TPU devices of `topo` as compile targets (multi-slice ones carry slice_index)."""
  from jax.experimental import topologies

  if not topo.is_tpu:
    raise ValueError(f"{topo.name}: ahead-of-time compilation here targets TPUs only")
  if not libtpu_available():
    raise RuntimeError("libtpu is not installed: pip install 'unified_mm[tpu]'")
  with _quiet_env():
    desc = topologies.get_topology_desc(
        topology_name=f"{topo.chip.name}:{topo.shape_str}", platform="tpu",
        chip_config_name=topo.chip.chip_config, chips_per_host_bounds=topo.host_bounds,
        num_slices=topo.num_slices)
  return list(desc.devices)


@dataclasses.dataclass
class CompiledStep:
  """XLA's view of one train step on one device."""
  compile_seconds: float
  argument_bytes: int = 0
  output_bytes: int = 0
  alias_bytes: int = 0          # outputs written in place of donated inputs
  temp_bytes: int = 0           # activations, gradients, workspace
  code_bytes: int = 0
  flops: float | None = None    # per device, as executed (remat recompute included)
  bytes_accessed: float | None = None
  out_of_memory: str = ""       # XLA's RESOURCE_EXHAUSTED message when it does not fit
  needed_bytes: int | None = None
  available_bytes: int | None = None

  @property
  def peak_bytes(self) -> int:
    """Live at once: inputs, outputs not aliased to inputs, temporaries, code."""
    return (self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes
            + self.code_bytes)

  @property
  def fits(self) -> bool:
    return not self.out_of_memory


def lower_train_step(config, devices, task=None):
  """The trainer's jitted step, lowered for `devices`; returns (lowered, state bytes/device)."""
  from unified_mm.parallel.mesh import make_mesh
  from unified_mm.parallel.sharding import activate, named_sharding, rules_from_config
  from unified_mm.train.optim import make_optimizer
  from unified_mm.train.state import (abstract_model, make_init_fn, state_sharding,
                                      with_shardings)
  from unified_mm.train.step import jit_train_step, make_train_step

  if task is None:
    from unified_mm.tasks import make_task
    task = make_task(config)
  mesh = make_mesh(config.mesh, devices)
  rules = rules_from_config(config.rules)
  model_def, abstract_params, param_shardings = abstract_model(task, config.seed, mesh, rules)
  tx, schedule = make_optimizer(config.optim, int(config.train.steps), abstract_params)
  init_fn = make_init_fn(task, config.seed, tx, config.optim.ema_decay > 0)
  with activate(mesh, rules):
    abstract_state = jax.eval_shape(init_fn)
  shardings = state_sharding(abstract_state, param_shardings, mesh)
  state = with_shardings(abstract_state, shardings)
  batch_shardings = {k: named_sharding(mesh, axes, rules) for k, axes in task.batch_axes().items()}
  shapes = abstract_batch(task, int(config.train.batch_size))
  batch = {k: jax.ShapeDtypeStruct(shape, dtype, sharding=batch_shardings[k])
           for k, (shape, dtype) in shapes.items()}
  step = jit_train_step(
      make_train_step(task, model_def, tx, schedule, seed=config.seed,
                      grad_accum_steps=config.train.grad_accum_steps,
                      ema_decay=config.optim.ema_decay),
      shardings, batch_shardings)
  with activate(mesh, rules):
    lowered = step.lower(state, batch)
  return lowered


_OOM_NUMBERS = re.compile(
    r"([\d.]+)\s*([KMGT]?i?B?)\b[^.\n]*?(?:exceed|over|more than|available)[^\d]*([\d.]+)\s*([KMGT]?i?B?)",
    re.IGNORECASE)
# XLA prints sizes like "42.01G" in binary units (v5e's 16 GiB shows as 15.75G usable).
_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "KIB": 2**10, "M": 2**20, "MB": 2**20,
          "MIB": 2**20, "G": 2**30, "GB": 2**30, "GIB": 2**30, "T": 2**40, "TB": 2**40,
          "TIB": 2**40}


def _oom_sizes(message: str) -> tuple[int | None, int | None]:
  m = _OOM_NUMBERS.search(message)
  if not m:
    return None, None
  size = lambda num, unit: int(float(num) * _UNITS.get(unit.upper(), 1))
  return size(m.group(1), m.group(2)), size(m.group(3), m.group(4))


def compile_train_step(config, devices, task=None) -> CompiledStep:
  """Compiles the step for `devices` and reads XLA's memory and cost analyses."""
  t0 = time.perf_counter()
  lowered = lower_train_step(config, devices, task)
  try:
    compiled = lowered.compile()
  except Exception as e:  # XlaRuntimeError; its class moved between jaxlib versions
    message = str(e)
    if "RESOURCE_EXHAUSTED" not in message and "exceeds" not in message.lower():
      raise
    needed, available = _oom_sizes(message)
    return CompiledStep(time.perf_counter() - t0, out_of_memory=message.strip(),
                        needed_bytes=needed, available_bytes=available)
  seconds = time.perf_counter() - t0
  mem = compiled.memory_analysis()
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else (cost or {})
  return CompiledStep(
      seconds, argument_bytes=mem.argument_size_in_bytes, output_bytes=mem.output_size_in_bytes,
      alias_bytes=mem.alias_size_in_bytes, temp_bytes=mem.temp_size_in_bytes,
      code_bytes=mem.generated_code_size_in_bytes, flops=cost.get("flops"),
      bytes_accessed=cost.get("bytes accessed"))
