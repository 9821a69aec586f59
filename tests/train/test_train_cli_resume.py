"""`umm train` end to end on the real `experiments/lm.py:tiny` preset (shrunk by
overrides), in subprocesses with 8 fake CPU devices:

  A: 40 steps straight.
  B: the same command, SIGTERMed after ~13 steps (preemption: it must save the
     current step and exit cleanly), resumed and SIGKILLed from outside after
     ~20 steps (aimed at an in-flight async save), resumed again to 40.
B's logged losses equal A's at every step and its final params are bitwise A's.
A's checkpoint (fsdp=4 x tensor=2) then restores onto 2 devices and onto 1.
"""

import pathlib
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from train_metrics_reader import train_losses

from unified_mm.config.loading import load_config
from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.sharding import rules_from_config
from unified_mm.tasks import make_task
from unified_mm.train.checkpoint import Checkpoints, checkpoint_dir
from unified_mm.train.metrics import read_metrics_rows
from unified_mm.train.preemption import PREEMPTED_EXIT_CODE
from unified_mm.train.trainer import plan_state

STEPS = 40
OVERRIDES = [
    f"--config.train.steps={STEPS}", "--config.train.log_every_steps=1",
    "--config.train.eval_every_steps=0", "--config.train.batch_size=8",
    "--config.train.progress=false", "--config.data.seq_len=64", "--config.model.num_layers=2",
    "--config.ckpt.save_every_steps=10", "--config.mesh.data=1", "--config.mesh.fsdp=4",
    "--config.mesh.tensor=2",
]
SPEC = "experiments/lm.py:tiny"


def _umm(workdir, *extra):
  return [sys.executable, "-m", "unified_mm.cli.main", "train", "--config", SPEC,
          "--workdir", str(workdir), *OVERRIDES, *extra]


@pytest.fixture(scope="module")
def env(subprocess_env, tmp_path_factory):
  e = subprocess_env(8)
  # Every run compiles the same step: share the executables through JAX's cache.
  e["JAX_COMPILATION_CACHE_DIR"] = str(tmp_path_factory.mktemp("jax_cache"))
  return e


def _last_step(workdir) -> int:
  rows = read_metrics_rows(workdir)  # polled while the trainer writes: whole lines only
  return rows[-1]["step"] if rows else 0


def _partial_saves(workdir) -> list[str]:
  d = checkpoint_dir(workdir)
  return sorted(p.name for p in d.glob("*.orbax-checkpoint-tmp*")) if d.exists() else []


def _run(cmd, env, cwd, log):
  with open(log, "w") as f:
    done = subprocess.run(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT, timeout=600)
  return done.returncode, pathlib.Path(log).read_text()


def _start(cmd, env, cwd, log):
  with open(log, "w") as f:  # the child keeps its own copy of the descriptor
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)


def _wait_for(proc, until, timeout=300.0, poll=0.01):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if until():
      return True
    if proc.poll() is not None:
      return False
    time.sleep(poll)
  return False


@pytest.fixture(scope="module")
def run_a(env, repo_root, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("lm_a") / "w"
  code, out = _run(_umm(workdir), env, repo_root, workdir.parent / "a.log")
  assert code == 0, out[-3000:]
  return workdir


@pytest.fixture(scope="module")
def run_b(env, repo_root, tmp_path_factory, run_a):
  """Interrupted twice (SIGTERM, then SIGKILL), resumed twice."""
  workdir = tmp_path_factory.mktemp("lm_b") / "w"
  logs = workdir.parent
  info = {}

  proc = _start(_umm(workdir), env, repo_root, logs / "b1.log")
  assert _wait_for(proc, lambda: _last_step(workdir) >= 13), (logs / "b1.log").read_text()[-3000:]
  proc.send_signal(signal.SIGTERM)
  info["sigterm_code"] = proc.wait(timeout=120)
  info["b1"] = (logs / "b1.log").read_text()

  start = time.monotonic()
  proc = _start(_umm(workdir), env, repo_root, logs / "b2.log")
  # Aim the kill at an async save in flight; else kill a few steps past step 20.
  _wait_for(proc, lambda: _partial_saves(workdir) or _last_step(workdir) >= 24, poll=0.002)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  info["killed_mid_save"] = _partial_saves(workdir)
  info["b2_seconds"] = time.monotonic() - start
  info["b2"] = (logs / "b2.log").read_text()

  code, info["b3"] = _run(_umm(workdir), env, repo_root, logs / "b3.log")
  assert code == 0, info["b3"][-3000:]
  return workdir, info


def _final_params(workdir, devices=None, mesh=None):
  """Params of the last checkpoint, restored onto `mesh` over `devices`."""
  config = load_config(SPEC, [o for o in OVERRIDES if not o.startswith("--config.mesh")] + (mesh or []))
  devices = devices or jax.devices()
  m = make_mesh(config.mesh, devices)
  plan = plan_state(make_task(config), config, m, rules_from_config(config.rules))
  ckpts = Checkpoints(checkpoint_dir(workdir), read_only=True)
  try:
    state, _ = ckpts.restore(ckpts.latest_step(), plan.target)
  finally:
    ckpts.close()
  return {k: np.asarray(jax.device_get(v)) for k, v in state.params.items()}, state


def test_sigterm_saves_the_current_step(run_b):
  workdir, info = run_b
  assert info["sigterm_code"] == PREEMPTED_EXIT_CODE, info["b1"][-3000:]  # saved; re-run to resume
  line = next(l for l in info["b1"].splitlines() if "preempted: saved a checkpoint for step" in l)
  step = int(line.rsplit("step ", 1)[1].split(",")[0])
  assert step >= 13 and step % 10  # not a regular save step: saved because of SIGTERM
  assert f"resumed from checkpoint step {step}" in info["b2"]


def test_sigkill_then_resume_from_last_complete_checkpoint(run_b):
  workdir, info = run_b
  resumed = [l for l in info["b3"].splitlines() if "resumed from checkpoint step" in l]
  assert len(resumed) == 1, info["b3"][-3000:]
  if info["killed_mid_save"]:  # the kill landed during an async save
    step = int(info["killed_mid_save"][0].split(".")[0])
    assert f"ignoring checkpoint step {step}" in info["b3"]
    assert f"resumed from checkpoint step {step}" not in info["b3"]


def test_resumed_losses_and_params_equal_the_straight_run(run_a, run_b):
  workdir_b, info = run_b
  losses_a, losses_b = train_losses(run_a), train_losses(workdir_b)
  assert sorted(losses_a) == sorted(losses_b) == list(range(1, STEPS + 1))
  repeated = [s for s, v in losses_b.items() if len(v) > 1]
  assert repeated, "the interruptions should have made B redo some steps"
  for step in losses_b:
    assert losses_b[step] == [losses_a[step][0]] * len(losses_b[step]), step
  params_a, state_a = _final_params(run_a, mesh=OVERRIDES[-3:])
  params_b, state_b = _final_params(workdir_b, mesh=OVERRIDES[-3:])
  assert int(state_a.step) == int(state_b.step) == STEPS
  for k in params_a:
    np.testing.assert_array_equal(params_a[k], params_b[k], err_msg=k)


@pytest.mark.parametrize("devices,mesh", [
    (2, ["--config.mesh.data=1", "--config.mesh.fsdp=2", "--config.mesh.tensor=1"]),
    (1, ["--config.mesh.data=1", "--config.mesh.fsdp=1", "--config.mesh.tensor=1"]),
])
def test_checkpoint_restores_onto_another_mesh(run_a, devices, mesh):
  params_8, _ = _final_params(run_a, mesh=OVERRIDES[-3:])
  params_n, state_n = _final_params(run_a, devices=jax.devices()[:devices], mesh=mesh)
  leaf = next(iter(state_n.params.values()))
  assert len(leaf.sharding.device_set) == devices
  for k in params_8:
    np.testing.assert_array_equal(params_8[k], params_n[k], err_msg=k)


def test_tensorboard_reader_finds_the_lm_scalars(run_a):
  from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
  ea = EventAccumulator(str(run_a / "tb"))
  ea.Reload()
  tags = set(ea.Tags()["scalars"])
  assert {"train/loss", "train/lr", "train/grad_norm", "train/tokens_per_s", "train/step_ms"} <= tags
  assert any(t.startswith("train/text/") for t in tags) and any(t.startswith("train/image/") for t in tags)
  assert [e.step for e in ea.Scalars("train/loss")] == list(range(1, STEPS + 1))


@pytest.mark.parametrize("override,names", [
    (["--config.train.stepz=5"], ["train.stepz", "steps"]),
    (["--config.mesh.data=3"], ["mesh.data=3", "8"]),
    (["--config.mesh.data=1", "--config.mesh.tensor=8"], ["model.num_heads=4", "mesh.tensor=8"]),
    (['--config.rules=[["batchh", ["data", "fsdp"]]]'], ["rules[0]", "'batchh'"]),
])
def test_bad_config_fails_before_building(env, repo_root, tmp_path, override, names):
  workdir = tmp_path / "w"
  done = subprocess.run(
      [sys.executable, "-m", "unified_mm.cli.main", "train", "--config", SPEC,
       "--workdir", str(workdir), *override],
      env=env, cwd=repo_root, capture_output=True, text=True, timeout=120)
  assert done.returncode == 2
  lines = done.stderr.strip().splitlines()
  assert len(lines) == 1, done.stderr
  assert lines[0].startswith("umm train: config error:")
  for name in names:
    assert name in lines[0], lines[0]
  assert not workdir.exists()  # nothing was built
