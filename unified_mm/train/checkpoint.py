"""Orbax checkpoints: the only module that imports Orbax.

A checkpoint step N holds the state *after* N optimiser steps, as separate items:

  params   the flat param dict (StandardSave; what `init_from` reads)
  state    step, optimiser state, EMA (StandardSave)
  data     the data iterator's state after the N batches it has served (JSON)
  config   the run's config (JSON), to refuse resuming with another model
  metrics  the last logged metrics (JSON)
  digests  a checksum of every array and of the data state (JSON), verified on
           restore: a byte flipped on disk that Orbax would read happily is
           caught here (`ChecksumMismatch`)

Saves are asynchronous: `save` returns once arrays are copied off the devices,
so the step after it may reuse (donate) their buffers. Restoring takes a target
tree of `jax.ShapeDtypeStruct(..., sharding=...)`, so a checkpoint restores onto
any mesh or device count.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import logging
import os
import pathlib
import re
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import NamedSharding, PartitionSpec
from orbax.checkpoint import checkpoint_managers as policies

log = logging.getLogger("unified_mm.train")

_ITEMS = ("params", "state", "data", "config", "metrics", "digests")
_TMP = re.compile(r"^(\d+)\.orbax-checkpoint-tmp")


class ChecksumMismatch(RuntimeError):
  """A restored array (or the data state) differs from what was saved."""


class CheckpointWriteError(RuntimeError):
  """A checkpoint could not be written (e.g. the disk is full). The steps saved
  before it are intact; the message names the step that was lost."""


def checkpoint_dir(workdir) -> pathlib.Path:
  """Where a workdir keeps its checkpoints."""
  return pathlib.Path(workdir) / "checkpoints"


def _state_tree(state) -> dict[str, Any]:
  tree = {"step": state.step, "opt_state": state.opt_state}
  if state.ema is not None:
    tree["ema"] = state.ema
  return tree


# ---- Checksums ---------------------------------------------------------------
# An array's checksum is two uint32 sums over its words w_i (its elements' bits
# read as uint32, uint16 or uint8 words) at flat position i:
#   a = sum_i w_i * (2i + 1)    any change to one word changes a (2i+1 is odd)
#   b = sum_i w_i               32 more bits against changes to several words
# Wrapping integer sums do not depend on the order of addition, so an array has
# the same checksum on any mesh and device count. They run jitted on the
# devices, where the arrays already are: one pass, no host copy.

def _words(x):
  if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    return x.astype(jnp.uint32)
  if x.dtype.itemsize >= 4:  # an 8-byte element becomes two words (a trailing axis)
    return jax.lax.bitcast_convert_type(x, jnp.uint32)
  unsigned = {2: jnp.uint16, 1: jnp.uint8}[x.dtype.itemsize]
  return jax.lax.bitcast_convert_type(x, unsigned).astype(jnp.uint32)


def _array_checksum(x):  # any array -> [2] uint32
  w = _words(jnp.asarray(x))
  index, stride = jnp.zeros(w.shape, jnp.uint32), 1
  for d in reversed(range(w.ndim)):
    index = index + jax.lax.broadcasted_iota(jnp.uint32, w.shape, d) * jnp.uint32(stride % 2**32)
    stride *= w.shape[d]
  a = jnp.sum(w * (2 * index + 1), dtype=jnp.uint32)
  b = jnp.sum(w, dtype=jnp.uint32)
  return jnp.stack([a, b])


@functools.lru_cache(maxsize=None)
def _checksum_fn(out_sharding):
  return jax.jit(lambda leaves: [_array_checksum(x) for x in leaves], out_shardings=out_sharding)


def checksums(tree) -> dict[str, str]:
  """{path: "dtype:checksum"} of every array in `tree` (the same on any mesh)."""
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  if not leaves:
    return {}
  names = [jax.tree_util.keystr(p) for p, _ in leaves]
  arrays = [x for _, x in leaves]
  sharding = getattr(arrays[0], "sharding", None)
  replicated = (NamedSharding(sharding.mesh, PartitionSpec())
                if isinstance(sharding, NamedSharding) else None)  # readable on every process
  sums = jax.device_get(_checksum_fn(replicated)(arrays))
  return {n: f"{np.dtype(x.dtype).name}:{int(s[0]):08x}{int(s[1]):08x}"
          for n, x, s in zip(names, arrays, sums)}


def _json_digest(value) -> str:
  return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def _is_disk_full(error: BaseException) -> bool:
  seen = set()
  while error is not None and id(error) not in seen:
    seen.add(id(error))
    if getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
      return True
    text = str(error)
    if "No space left" in text or "Disk quota exceeded" in text or "File too large" in text:
      return True
    error = error.__cause__ or error.__context__
  return False


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
    self._async = options.enable_async_checkpointing
    self._in_flight: int | None = None  # the step of the save not yet known to be on disk
    self._unverified_logged: set[int] = set()

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
    """Starts saving `step` (False: not a save step). A failed write, this one's
    or the previous async one's, raises CheckpointWriteError naming the lost step."""
    if not force and not self.manager.should_save(step):
      return False
    self.wait()  # the previous async save: its failure is reported against its step
    tree = {"params": state.params, "state": _state_tree(state)}
    digests = {"arrays": checksums(tree), "data": _json_digest(data_state)}
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(state.params),
        state=ocp.args.StandardSave(_state_tree(state)),
        data=ocp.args.JsonSave(data_state),
        config=ocp.args.JsonSave(config_json),
        metrics=ocp.args.JsonSave(metrics),
        digests=ocp.args.JsonSave(digests),
    )
    self._in_flight = step
    try:
      saved = self.manager.save(step, args=args, metrics=best_metrics, force=force)
    except Exception as e:  # noqa: BLE001 -- reported with the step it cost
      raise self._write_error(step, e) from e
    if not self._async:
      self.wait()
    return saved

  def _write_error(self, step: int, error: BaseException | None) -> CheckpointWriteError:
    self._in_flight = None
    good = [s for s in self._committed_steps() if s != step]
    kept = f"step {good[-1]} is the last complete checkpoint" if good else "no complete checkpoint is left"
    cause = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}" if error else "see the log"
    if error is None or _is_disk_full(error):
      usage = ""
      with contextlib.suppress(OSError):
        st = os.statvfs(self.directory)
        usage = f", {st.f_bavail * st.f_frsize / 2**20:.1f} MiB free"
      what = "disk full" if error is not None else "checkpoint not committed (disk full?)"
      return CheckpointWriteError(
          f"{what} while writing checkpoint step {step} to {self.directory}{usage}: step {step} "
          f"was lost, {kept}; free space and re-run the same command to resume ({cause})")
    return CheckpointWriteError(
        f"writing checkpoint step {step} to {self.directory} failed: step {step} was lost, "
        f"{kept} ({cause})")

  def _committed_steps(self) -> list[int]:
    if not self.directory.is_dir():
      return []
    return sorted(int(p.name) for p in self.directory.iterdir()
                  if p.name.isdigit() and (p / "_CHECKPOINT_METADATA").exists())

  def _check_committed(self, step: int) -> None:
    """Orbax logs (and swallows) a failed background write: look for the step on disk."""
    if step not in self._committed_steps():
      raise self._write_error(step, self._last_error())
    self._in_flight = None

  def _last_error(self) -> BaseException | None:
    try:
      self.manager.check_for_errors()
    except Exception as e:  # noqa: BLE001
      return e
    return None

  def _check_metadata(self, step: int, tree: dict) -> None:
    """Orbax restores onto a target without reading an item's tree metadata
    (`_METADATA`); a checkpoint that lost it is damaged all the same."""
    for item, restored in tree.items():
      why = ""
      try:
        meta = ocp.StandardCheckpointer().metadata(self.directory / str(step) / item).item_metadata
      except Exception as e:  # noqa: BLE001 -- missing or unparsable
        meta, why = None, f" ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
      if meta is None:  # Orbax logs a warning and returns None when _METADATA is gone
        raise ChecksumMismatch(f"the metadata of {item!r} is missing or unreadable{why}")
      if item == "params":
        differ = [n for n, a in restored.items()
                  if n not in meta or tuple(meta[n].shape) != tuple(a.shape)]
      else:
        differ = [] if len(jax.tree.leaves(meta)) == len(jax.tree.leaves(restored)) else ["leaves"]
      if differ:
        raise ChecksumMismatch(f"the metadata of {item!r} does not describe the restored "
                               f"arrays ({', '.join(differ[:3])})")

  def restore(self, step: int, target_state):
    """(TrainState, data iterator state) at `step`, onto the target's shardings,
    checked against the checksums saved with it (ChecksumMismatch if they differ)."""
    got = self.manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(target_state.params),
        state=ocp.args.StandardRestore(_state_tree(target_state)),
        data=ocp.args.JsonRestore(),
    ))
    rest = got["state"]
    state = type(target_state)(step=rest["step"], params=got["params"],
                               opt_state=rest["opt_state"], ema=rest.get("ema"))
    self.verify(step, {"params": state.params, "state": _state_tree(state)}, got["data"])
    return state, got["data"]

  def verify(self, step: int, tree: dict, data_state=None) -> None:
    """Compares restored arrays (and the data state) with the checksums saved at `step`."""
    if not (self.directory / str(step) / "digests").exists():
      if step not in self._unverified_logged:
        self._unverified_logged.add(step)
        log.warning("checkpoint step %d in %s has no checksums (saved by an older version): "
                    "restored unverified", step, self.directory)
      return
    self._check_metadata(step, tree)
    saved = self.manager.restore(step, args=ocp.args.Composite(
        digests=ocp.args.JsonRestore()))["digests"]
    got = checksums(tree)
    bad = [name for name, digest in got.items()
           if saved["arrays"].get(name, digest).split(":")[0] == digest.split(":")[0]
           and saved["arrays"].get(name, digest) != digest]
    if bad:
      raise ChecksumMismatch(
          f"{len(bad)} of {len(got)} arrays differ from the checksums saved with them "
          f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})")
    if data_state is not None and saved.get("data") != _json_digest(data_state):
      raise ChecksumMismatch("the data iterator state differs from the checksum saved with it")

  def restore_params(self, step: int, target_params, partial: bool = False):
    """The saved params at `step`; `partial`: only those named in `target_params`."""
    if partial:  # StandardRestore has no partial mode; the PyTree handler reads the same files
      args = ocp.args.PyTreeRestore(
          item=target_params, partial_restore=True,
          restore_args=ocp.checkpoint_utils.construct_restore_args(target_params))
    else:
      args = ocp.args.StandardRestore(target_params)
    params = self.manager.restore(step, args=ocp.args.Composite(params=args))["params"]
    self.verify(step, {"params": params})
    return params

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
    """Waits for the async save in flight; CheckpointWriteError if it failed."""
    step, self._in_flight = self._in_flight, None
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # noqa: BLE001 -- reported with the step it cost
      if step is None:
        raise
      raise self._write_error(step, e) from e
    if step is not None:
      self._check_committed(step)

  def close(self) -> None:
    """Waits for the last async save and closes; a failed write is reported by
    `wait()`, which the trainer calls first, so here it is only logged."""
    try:
      self.wait()
    except CheckpointWriteError as e:
      log.debug("on close: %s", e)
    finally:
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
