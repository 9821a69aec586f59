"""Where a run starts from, in this order:

1. the latest *complete and readable* checkpoint in the workdir (a save cut
   short by a kill, or a checkpoint whose files are damaged, is skipped with a
   log line naming it, and the previous good step is used);
2. `config.ckpt.init_from`: another run's params only; optimiser state and the
   step start fresh (`ckpt.init_partial`: params the source lacks or holds in
   another shape, such as a head added or a decoder widened for fine-tuning,
   keep their fresh init);
3. a fresh init.

A workdir whose checkpoint was written for a different `config.model` is
refused, naming the keys that differ.
"""

from __future__ import annotations

import json
import logging
import jax

from unified_mm.config.loading import ConfigError
from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir
from unified_mm.train.state import start_state

log = logging.getLogger("unified_mm.train")


def model_differences(saved: dict, current: dict, prefix: str = "model") -> list[str]:
  """`model.key: saved -> current` for every differing key (nested keys dotted)."""
  out = []
  for key in sorted(set(saved) | set(current)):
    a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
    if isinstance(a, dict) and isinstance(b, dict):
      out += model_differences(a, b, f"{prefix}.{key}")
    elif a != b:
      out.append(f"{prefix}.{key}: {a!r} -> {b!r}")
  return out


def check_compatible(ckpts: Checkpoints, step: int, saved_config: dict, config) -> None:
  saved = saved_config.get("model", {})
  current = json.loads(config.model.to_json_best_effort())
  diffs = model_differences(saved, current)
  if diffs:
    raise ConfigError(
        f"{ckpts.directory.parent} holds a checkpoint (step {step}) of a different model "
        f"({'; '.join(diffs)}); train in a fresh --workdir, warm-started with "
        f"--config.ckpt.init_from={ckpts.directory.parent}")


def _restore_latest_good(ckpts: Checkpoints, config, target):
  steps = ckpts.steps()
  for i, step in enumerate(reversed(steps)):
    try:
      saved = ckpts.saved_config(step)
    except Exception:  # noqa: BLE001 -- judged below, by the restore itself
      saved = None
    if saved is not None:
      check_compatible(ckpts, step, saved, config)
    try:
      state, data_state = ckpts.restore(step, target)
      jax.block_until_ready(state)
    except Exception as e:  # noqa: BLE001 -- any failure to read means "damaged"
      older = steps[-i - 2] if i + 1 < len(steps) else None
      log.warning("checkpoint step %d is unreadable (%s: %s); falling back to %s", step,
                  type(e).__name__, str(e).splitlines()[0][:200],
                  f"step {older}" if older is not None else "a fresh start")
      ckpts.set_aside(step)
      continue
    log.info("resumed from checkpoint step %d in %s", step, ckpts.directory)
    return state, data_state
  return None


def _init_from(source: str, config, target, init, tx, use_ema: bool, shardings):
  src = Checkpoints(checkpoint_dir(source), read_only=True)
  step = src.latest_step()
  if step is None:
    raise ConfigError(f"ckpt.init_from={source}: no complete checkpoint there")
  partial = bool(config.ckpt.get("init_partial", False))
  wanted, fresh_names = target.params, []
  if partial:
    saved = src.saved_param_shapes(step)
    wanted = {k: v for k, v in target.params.items() if saved.get(k) == tuple(v.shape)}
    fresh_names = sorted(set(target.params) - set(wanted))
  try:
    params = src.restore_params(step, wanted, partial=partial)
  except Exception as e:  # noqa: BLE001 -- shape/dtype/name mismatch: say which model differs
    saved = src.saved_config(step).get("model", {})
    diffs = model_differences(saved, json.loads(config.model.to_json_best_effort()))
    raise ConfigError(
        f"ckpt.init_from={source}: its params (step {step}) do not fit this model "
        f"({'; '.join(diffs) or str(e).splitlines()[0][:200]})") from None
  finally:
    src.close()
  if fresh_names:
    params = {**init().params, **params}
    log.info("ckpt.init_partial: %d params not in %s (or of another shape there) start "
             "fresh (%s%s)", len(fresh_names),
             source, ", ".join(fresh_names[:4]), ", ..." if len(fresh_names) > 4 else "")
  log.info("initialised params from %s step %d (optimizer state and step start fresh)",
           source, step)
  fresh = jax.jit(lambda p: start_state(tx, p, use_ema), out_shardings=shardings)
  return fresh(params)


def restore_or_init(ckpts: Checkpoints, config, target, init, tx, use_ema: bool,
                    shardings):
  """(TrainState, data iterator state or None) for the run to start from."""
  for step in ckpts.partial_steps:
    log.warning("ignoring checkpoint step %d in %s: its save never finished", step, ckpts.directory)
  if ckpts.steps():
    got = _restore_latest_good(ckpts, config, target)
    if got is not None:
      return got
  if config.ckpt.init_from:
    return _init_from(config.ckpt.init_from, config, target, init, tx, use_ema, shardings), None
  log.info("fresh init (no checkpoint in %s)", ckpts.directory)
  return init(), None
