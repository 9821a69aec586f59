"""The generic trainer: one loop for every stage.

Reads top to bottom in the big_vision order: mesh, data, eval_shape,
shardings, jitted init, restore-or-init, loop (log, eval, checkpoint). A
stage contributes a Task (`unified_mm.tasks.base`), built by the caller and
handed in; nothing here knows what the model is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import pathlib
import time
from collections.abc import Callable

import jax
import numpy as np
import optax

from unified_mm.config.validation import validate
from unified_mm.parallel.mesh import make_mesh, mesh_shape
from unified_mm.parallel.sharding import activate, named_sharding, rules_from_config
from unified_mm.train.checkpoint import CheckpointWriteError, Checkpoints, checkpoint_dir
from unified_mm.train.metrics import MetricWriter
from unified_mm.train.optim import make_optimizer
from unified_mm.train.preemption import PreemptionFlag
from unified_mm.train.progress import Progress
from unified_mm.train.restore import restore_or_init
from unified_mm.train.state import (ModelDef, TrainState, abstract_model, make_init_fn,
                                    state_sharding, with_shardings)
from unified_mm.train.step import jit_train_step, make_train_step
from unified_mm.train.workdir_lock import hold_workdir

log = logging.getLogger("unified_mm.train")


class TrainingDiverged(RuntimeError):
  """The loss became NaN/Inf; nothing after the last good checkpoint was saved."""


def global_batch(local: dict, shardings: dict) -> dict:
  """This host's rows -> one global jax.Array per entry."""
  return {k: jax.make_array_from_process_local_data(shardings[k], np.asarray(v))
          for k, v in local.items()}


def _data_stats(data) -> dict[str, float]:
  """The iterator's skip counters (`data/skipped`, ...), summed over hosts."""
  if not hasattr(data, "stats"):
    return {}
  stats = data.stats()
  if jax.process_count() > 1 and stats:
    from jax.experimental import multihost_utils
    names = sorted(stats)
    totals = multihost_utils.process_allgather(np.asarray([stats[k] for k in names])).sum(0)
    stats = dict(zip(names, totals.tolist()))
  return stats


def check_fits(abstract_state, shardings, devices) -> str:
  """Describes the state's size; fails early if one device cannot even hold it."""
  count = sum(math.prod(a.shape) for a in jax.tree.leaves(abstract_state.params))
  per_device = sum(
      math.prod(s.shard_shape(a.shape)) * a.dtype.itemsize
      for a, s in zip(jax.tree.leaves(abstract_state), jax.tree.leaves(shardings)))
  # memory_stats() works on this process's own devices only (multi-process runs).
  mine = next(d for d in devices if d.process_index == jax.process_index())
  stats = mine.memory_stats() or {}  # None on CPU
  limit = stats.get("bytes_limit")
  if limit and per_device > limit:
    from unified_mm.config.loading import ConfigError
    raise ConfigError(
        f"the train state needs {per_device / 2**30:.2f} GiB per device (params, moments"
        f"{', EMA' if abstract_state.ema is not None else ''}) but a device has "
        f"{limit / 2**30:.2f} GiB: shard more (mesh.fsdp, mesh.tensor) or shrink the model")
  return f"{count / 1e6:.3f}M params, train state {per_device / 2**20:.1f} MiB per device"


@dataclasses.dataclass(frozen=True)
class StatePlan:
  """Everything known about the train state before any array exists."""
  model_def: ModelDef
  tx: optax.GradientTransformation
  schedule: optax.Schedule
  use_ema: bool
  init_fn: Callable[[], TrainState]
  shardings: TrainState   # of NamedSharding
  target: TrainState      # of ShapeDtypeStruct with those shardings (restore target)


def plan_state(task, config, mesh, rules) -> StatePlan:
  model_def, abstract_params, param_shardings = abstract_model(task, config.seed, mesh, rules)
  tx, schedule = make_optimizer(config.optim, int(config.train.steps), abstract_params)
  use_ema = config.optim.ema_decay > 0
  init_fn = make_init_fn(task, config.seed, tx, use_ema)
  with activate(mesh, rules):
    abstract_state = jax.eval_shape(init_fn)
  shardings = state_sharding(abstract_state, param_shardings, mesh)
  return StatePlan(model_def, tx, schedule, use_ema, init_fn, shardings,
                   with_shardings(abstract_state, shardings))


def train_and_evaluate(config, workdir, task, *, devices=None):
  """Trains `task` with `config` in `workdir` (resuming if it holds a checkpoint).

  Returns the final TrainState. The task is built above the trainer and
  handed to it (`unified_mm.eval.stage_evaluators.make_task(config)`, as
  `umm train` does); `devices` defaults to all devices.
  """
  devices = list(devices if devices is not None else jax.devices())
  validate(config, len(devices))
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  with hold_workdir(workdir):  # a second run on this workdir is refused until this one ends
    return _train(config, workdir, task, devices)


def _train(config, workdir: pathlib.Path, task, devices):
  if hasattr(task, "bind_workdir"):  # stages whose evaluators write files (image grids)
    task.bind_workdir(workdir)

  # ---- Mesh and rules ------------------------------------------------------
  mesh = make_mesh(config.mesh, devices)
  rules = rules_from_config(config.rules)
  log.info("mesh %s over %d devices (%d processes)", mesh_shape(mesh), len(devices),
           jax.process_count())

  # ---- Data ----------------------------------------------------------------
  local_batch = config.train.batch_size // jax.process_count()
  data = task.make_data(jax.process_index(), jax.process_count(), local_batch)
  batch_shardings = {k: named_sharding(mesh, axes, rules) for k, axes in task.batch_axes().items()}

  # ---- Shapes first (eval_shape): a config that cannot fit fails here -------
  plan = plan_state(task, config, mesh, rules)
  log.info("%s", check_fits(plan.target, plan.shardings, devices))

  # ---- Restore or init (init is jitted with out_shardings: no host holds it all)
  ckpts = Checkpoints(checkpoint_dir(workdir), config.ckpt)
  with activate(mesh, rules):
    init = jax.jit(plan.init_fn, out_shardings=plan.shardings)
    state, data_state = restore_or_init(ckpts, config, plan.target, init, plan.tx,
                                        plan.use_ema, plan.shardings)
  if data_state is not None:
    data.set_state(data_state)

  train_step = jit_train_step(
      make_train_step(task, plan.model_def, plan.tx, plan.schedule, seed=config.seed,
                      grad_accum_steps=config.train.grad_accum_steps,
                      ema_decay=config.optim.ema_decay),
      plan.shardings, batch_shardings)

  loop = _Loop(config, workdir, task, plan.model_def, ckpts, data, batch_shardings)
  finished = False
  try:
    with activate(mesh, rules), PreemptionFlag() as preempt:
      state = loop.run(state, train_step, preempt)
    loop.wait_for_saves()  # the last async save; CheckpointWriteError if it failed
    finished = True
  finally:
    _close(ckpts, loop, raise_errors=finished)
  return state


def _close(ckpts, loop, raise_errors: bool) -> None:
  """Closes checkpoints and metric files. After a failure (say the disk is full,
  which also fails the metric files' last flush) the first error is the one reported."""
  for close in (ckpts.close, loop.close):
    try:
      close()
    except Exception as e:  # noqa: BLE001
      if raise_errors:
        raise
      log.warning("while stopping after an error: %s: %s", type(e).__name__, e)


class _Loop:
  """The step loop and its bookkeeping: logging, NaN checks, evals, saves."""

  def __init__(self, config, workdir, task, model_def, ckpts, data, batch_shardings):
    self.config, self.task, self.model_def = config, task, model_def
    self.ckpts, self.data, self.batch_shardings = ckpts, data, batch_shardings
    self.total = int(config.train.steps)
    self.writer = MetricWriter(workdir)
    self.config_json = json.loads(config.to_json_best_effort())
    self.pending = []      # (step, device metrics) not yet checked on the host
    self.rows = []         # (step, host metrics) checked, not yet logged
    self.last_logged: dict = {}
    self.eval_metrics: dict = {}
    self.evaluators = None
    self.tokens = 0
    self.t_interval = time.perf_counter()
    self.steps_interval = 0

  def run(self, state, train_step, preempt):
    step = int(jax.device_get(state.step))
    self.progress = Progress(step, self.total, enabled=jax.process_index() == 0
                             and self.config.train.progress)
    log_every = max(1, int(self.config.train.log_every_steps))
    eval_every = int(self.config.train.eval_every_steps)
    first = True
    while step < self.total:
      local = next(self.data)
      if hasattr(self.task, "rollout"):  # on-policy stages (grpo) sample with these params
        local = self.task.rollout(self.model_def, state.params, local, step)
      batch = global_batch(local, self.batch_shardings)
      self.tokens += int(self.task.tokens_in(local)) * jax.process_count()
      state, metrics = train_step(state, batch)
      step += 1
      self.steps_interval += 1
      self.pending.append((step, metrics))
      if first:  # keep compilation out of the throughput numbers
        jax.block_until_ready(metrics)
        log.info("first step (with compilation) took %.1f s", time.perf_counter() - self.t_interval)
        self.tokens, self.steps_interval, self.t_interval = 0, 0, time.perf_counter()
        first = False
      stop = preempt.requested()
      if step % log_every == 0 or step == self.total or stop:
        self._log(step)
      self.progress.update(step)
      if eval_every and step % eval_every == 0:
        self._evaluate(step, state)
      if self.ckpts.should_save(step) or step == self.total or stop:
        self._save(step, state, force=step == self.total or stop)
      if stop:
        self.progress.clear()
        log.warning("preempted: saved a checkpoint for step %d, stopping", step)
        break
    return state

  def _check(self) -> None:
    """Moves pending metrics to the host; a NaN/Inf loss stops the run."""
    if not self.pending:
      return
    host = jax.device_get([m for _, m in self.pending])
    for (step, _), m in zip(self.pending, host):
      loss = float(m["loss"])
      if not math.isfinite(loss):
        self.pending.clear()
        self.ckpts.wait()
        good = self.ckpts.latest_step()
        where = (f"{self.ckpts.directory / str(good)} (step {good})" if good is not None
                 else "none (no checkpoint was saved)")
        raise TrainingDiverged(
            f"loss is {loss} at step {step}; stopped without saving this state. "
            f"Last good checkpoint: {where}")
      self.rows.append((step, {k: float(v) for k, v in m.items()}))
    self.pending.clear()

  def _log(self, step: int) -> None:
    self._check()
    if not self.rows:
      return
    names = self.rows[-1][1].keys()
    mean = {k: float(np.mean([r[k] for _, r in self.rows if k in r])) for k in names}
    elapsed = time.perf_counter() - self.t_interval
    scalars = {f"train/{k}": v for k, v in mean.items()}
    scalars["train/lr"] = self.rows[-1][1]["lr"]  # the rate of the logged step, not a mean
    if self.steps_interval and elapsed > 0:
      scalars["train/tokens_per_s"] = self.tokens / elapsed
      scalars["train/step_ms"] = 1000 * elapsed / self.steps_interval
    scalars.update(_data_stats(self.data))
    self.writer.write(step, scalars)
    self.last_logged = dict(scalars, step=step)
    self.progress.logged(step, mean["loss"], scalars.get("train/tokens_per_s", 0.0))
    self.rows.clear()
    self.tokens, self.steps_interval, self.t_interval = 0, 0, time.perf_counter()

  def _evaluate(self, step: int, state) -> None:
    t0 = time.perf_counter()
    model = self.model_def.module(state.ema if state.ema is not None else state.params)
    if self.evaluators is None:  # built once: evaluators hold their batches and jitted fns
      self.evaluators = self.task.evaluators()
    scalars = {}
    for evaluator in self.evaluators:
      for name, value in evaluator.run(model):
        scalars[f"eval/{evaluator.name}/{name}"] = float(value)
    if scalars:
      self.writer.write(step, scalars)
      self.progress.clear()
      log.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
    self.eval_metrics = dict(scalars, step=step)
    self.t_interval += time.perf_counter() - t0  # evaluation is not training time

  def _save(self, step: int, state, force: bool) -> None:
    self._check()  # never save a poisoned state
    best = None
    if self.config.ckpt.keep_best_metric and self.eval_metrics.get("step") == step:
      best = {k: v for k, v in self.eval_metrics.items() if k != "step"}
    t0 = time.perf_counter()
    try:
      saved = self.ckpts.save(step, state, self.data.get_state(), self.config_json,
                              self.last_logged, best_metrics=best, force=force)
    except CheckpointWriteError as e:  # e.g. the disk is full: stop, say which step was lost
      self.progress.clear()
      log.error("%s", e)
      raise
    if saved:  # with async saves, the loop is blocked only while arrays leave the devices
      self.progress.clear()
      log.info("saving checkpoint for step %d (loop blocked %.0f ms)", step,
               1000 * (time.perf_counter() - t0))

  def wait_for_saves(self) -> None:
    try:
      self.ckpts.wait()
    except CheckpointWriteError as e:
      log.error("%s", e)
      raise

  def close(self) -> None:
    if hasattr(self, "progress"):
      self.progress.close()
    self.writer.close()
    if hasattr(self.data, "close"):
      self.data.close()
