"""Orbax checkpoints: the only module that imports Orbax.

A checkpoint step N holds the state *after* N optimiser steps, as separate items:

  params   the flat param dict (StandardSave; what `init_from` reads)
  state    step, optimiser state, EMA (StandardSave)
  data     the data iterator's state after the N batches it has served (JSON)
  config   the run's config (JSON), to refuse resuming with another model
  metrics  the last logged metrics (JSON)

Saves are asynchronous: `save` returns once arrays are copied off the devices,
so the step after it may reuse (donate) their buffers. Restoring takes a target
tree of `jax.ShapeDtypeStruct(..., sharding=...)`, so a checkpoint restores onto
any mesh or device count.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import re
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies

log = logging.getLogger("unified_mm.train")

_ITEMS = ("params", "state", "data", "config", "metrics")
_TMP = re.compile(r"^(\d+)\.orbax-checkpoint-tmp")


def checkpoint_dir(workdir) -> pathlib.Path:
  """Where a workdir keeps its checkpoints."""
  return pathlib.Path(workdir) / "checkpoints"


def _state_tree(state) -> dict[str, Any]:
  tree = {"step": state.step, "opt_state": state.opt_state}
  if state.ema is not None:
    tree["ema"] = state.ema
  return tree


class Checkpoints:
  """Keep-last-N (+ keep-best-by-metric) checkpoints of one workdir."""

  def __init__(self, directory: str | os.PathLike, ckpt_cfg=None, *, read_only: bool = False):
    self.directory = pathlib.Path(directory).absolute()
    self.partial_steps = self._partial_steps()
    policy = [policies.LatestN(n=ckpt_cfg.max_to_keep if ckpt_cfg else None)]
    if ckpt_cfg and ckpt_cfg.keep_best_metric:
      key = ckpt_cfg.keep_best_metric
      policy.append(policies.BestN(get_metric_fn=lambda m: m[key], n=1,
                                   reverse=ckpt_cfg.keep_best_mode == "min",
                                   keep_checkpoints_without_metrics=False))
    every = int(ckpt_cfg.save_every_steps) if ckpt_cfg else 0
    options = ocp.CheckpointManagerOptions(
        save_decision_policy=policies.AnySavePolicy(
            [policies.FixedIntervalPolicy(every)] if every > 0 else []),
        preservation_policy=policies.AnyPreservationPolicy(policy),
        enable_async_checkpointing=bool(ckpt_cfg.async_save) if ckpt_cfg else False,
        cleanup_tmp_directories=not read_only,
        read_only=read_only,
        create=not read_only,
    )
    self.manager = ocp.CheckpointManager(self.directory, item_names=_ITEMS, options=options)

  def _partial_steps(self) -> list[int]:
    """Steps whose save never finished (e.g. the process was killed mid-save)."""
    if not self.directory.is_dir():
      return []
    return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _TMP.match(p.name)))

  def steps(self) -> list[int]:
    return sorted(self.manager.all_steps())

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def should_save(self, step: int) -> bool:
    return self.manager.should_save(step)

  def save(self, step: int, state, data_state, config_json: dict, metrics: dict,
           *, best_metrics: dict | None = None, force: bool = False) -> bool:
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(state.params),
        state=ocp.args.StandardSave(_state_tree(state)),
        data=ocp.args.JsonSave(data_state),
        config=ocp.args.JsonSave(config_json),
        metrics=ocp.args.JsonSave(metrics),
    )
    return self.manager.save(step, args=args, metrics=best_metrics, force=force)

  def restore(self, step: int, target_state):
    """(TrainState, data iterator state) at `step`, onto the target's shardings."""
    got = self.manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(target_state.params),
        state=ocp.args.StandardRestore(_state_tree(target_state)),
        data=ocp.args.JsonRestore(),
    ))
    rest = got["state"]
    state = type(target_state)(step=rest["step"], params=got["params"],
                               opt_state=rest["opt_state"], ema=rest.get("ema"))
    return state, got["data"]

  def restore_params(self, step: int, target_params, partial: bool = False):
    """The saved params at `step`; `partial`: only those named in `target_params`."""
    if partial:  # StandardRestore has no partial mode; the PyTree handler reads the same files
      args = ocp.args.PyTreeRestore(
          item=target_params, partial_restore=True,
          restore_args=ocp.checkpoint_utils.construct_restore_args(target_params))
    else:
      args = ocp.args.StandardRestore(target_params)
    got = self.manager.restore(step, args=ocp.args.Composite(params=args))
    return got["params"]

  def saved_param_shapes(self, step: int) -> dict[str, tuple[int, ...]]:
    """{name: shape} of the params saved at `step`, from the checkpoint's metadata."""
    path = self.manager.directory / str(step) / "params"
    meta = ocp.StandardCheckpointer().metadata(path).item_metadata
    return {name: tuple(m.shape) for name, m in meta.items()}

  def saved_config(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))["config"]

  def saved_metrics(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(metrics=ocp.args.JsonRestore()))["metrics"]

  def set_aside(self, step: int) -> None:
    """Renames an unreadable step out of Orbax's sight (kept for inspection)."""
    if jax.process_index() == 0:
      path = self.directory / str(step)
      path.rename(path.with_name(f"{step}.unreadable"))
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      multihost_utils.sync_global_devices(f"umm_set_aside_{step}")
    self.manager.reload()

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()


@contextlib.contextmanager
def open_run(workdir, step: int | None = None, what: str = "complete"):
  """A trained run, read-only, for loading a frozen stage: yields
  (Checkpoints, step (default the latest), the config saved with it)."""
  ckpts = Checkpoints(checkpoint_dir(workdir), read_only=True)
  try:
    step = ckpts.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{workdir}: no {what} checkpoint in {ckpts.directory}")
    yield ckpts, step, ckpts.saved_config(step)
  finally:
    ckpts.close()
