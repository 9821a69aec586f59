"""Repeated kills: a toy run SIGKILLed again and again at chosen and random
moments (while compiling, while an async save is in flight, between steps),
resumed each time by the same command, ends bitwise equal to a run that was
never interrupted: params, optimizer state, EMA, data iterator state, and every
logged loss (steps redone after a kill log the same value again).

Fast: 30 steps, 3 kills. Slow: 200 steps, 20 kills.
"""

import random
import signal

import jax
import numpy as np
import pytest
from fault_procs import runner_cmd, start, wait_for
from train_metrics_reader import train_losses
from train_toy_task import ToyTask, toy_config

from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.sharding import rules_from_config
from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir
from unified_mm.train.metrics import read_metrics_rows
from unified_mm.train.trainer import plan_state

MODES = ("compile", "save", "steps", "random")


def _last_step(workdir) -> int:
  rows = read_metrics_rows(workdir)
  return rows[-1]["step"] if rows else 0


def _saving(workdir) -> bool:
  d = checkpoint_dir(workdir)
  return d.is_dir() and any(".orbax-checkpoint-tmp" in p.name for p in d.iterdir())


def _final_state(workdir, steps):
  config = toy_config(steps=steps)
  with config.unlocked():
    config.mesh.update(dict(data=-1, fsdp=1, tensor=1))
  mesh = make_mesh(config.mesh, jax.devices()[:1])
  plan = plan_state(ToyTask(config), config, mesh, rules_from_config(config.rules))
  ckpts = Checkpoints(checkpoint_dir(workdir), read_only=True)
  try:
    assert ckpts.latest_step() == steps
    state, data = ckpts.restore(steps, plan.target)
  finally:
    ckpts.close()
  return jax.device_get(state), data


def _killed_again_and_again(tmp_path, env, steps, save_every, kills, seed, sleep_ms=20):
  opts = dict(steps=steps, save_every=save_every)
  straight = tmp_path / "straight"
  code = start(runner_cmd(straight, **opts), env, tmp_path / "straight.log").wait(timeout=1800)
  assert code == 0, (tmp_path / "straight.log").read_text()[-3000:]

  workdir, rng, landed = tmp_path / "killed", random.Random(seed), []
  cmd = runner_cmd(workdir, **opts, sleep_ms=sleep_ms)  # the same command every time
  for i in range(kills):
    log = tmp_path / f"kill{i}.log"
    before, mode = _last_step(workdir), MODES[i % len(MODES)]
    proc = start(cmd, env, log)
    if mode == "compile":  # the restore is done, the first step compiles next
      wait_for(lambda: "resumed from" in log.read_text() or "fresh init" in log.read_text(), proc)
    elif mode == "save":
      wait_for(lambda: _saving(workdir), proc, poll=0.002)
    elif mode == "steps":
      target = before + rng.randint(1, 2 * save_every)
      wait_for(lambda: _last_step(workdir) >= target, proc)
    else:
      wait_for(lambda: False, proc, timeout=rng.uniform(0.5, 4.0))
    if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
      break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    landed.append((mode, _last_step(workdir), _saving(workdir)))
  final = tmp_path / "final.log"
  assert start(cmd, env, final).wait(timeout=1800) == 0, final.read_text()[-3000:]

  state_a, data_a = _final_state(straight, steps)
  state_b, data_b = _final_state(workdir, steps)
  assert data_a == data_b == {"served": steps}
  leaves_a = jax.tree_util.tree_flatten_with_path(state_a)[0]
  leaves_b = jax.tree.leaves(state_b)
  assert len(leaves_a) == len(leaves_b)
  for (path, a), b in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=jax.tree_util.keystr(path))
  losses_a, losses_b = train_losses(straight), train_losses(workdir)
  assert sorted(losses_b) == list(range(1, steps + 1))
  for step, values in losses_b.items():
    assert values == [losses_a[step][0]] * len(values), step
  return landed


def test_three_kills_then_bitwise_equal(tmp_path, runner_env):
  landed = _killed_again_and_again(tmp_path, runner_env, steps=30, save_every=5, kills=3, seed=0)
  assert len(landed) == 3, landed


@pytest.mark.slow
def test_twenty_kills_in_200_steps_then_bitwise_equal(tmp_path, runner_env):
  landed = _killed_again_and_again(tmp_path, runner_env, steps=200, save_every=10, kills=20,
                                   seed=21, sleep_ms=100)
  assert len(landed) >= 15, landed
  assert any(saving for _, _, saving in landed), f"no kill landed during a save: {landed}"
