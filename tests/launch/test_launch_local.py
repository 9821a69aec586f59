"""`umm launch --target local`: 2 processes x 4 fake CPU devices = one 8-device mesh.

The 2-process run must be the 1-process 8-device run, number for number:
same global batches (each process feeds its half), same losses, and a
checkpoint written by one process count resumes under the other.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from unified_mm.launch.spec import REPO_ROOT

CONFIG = "experiments/lm.py:tiny"
# The tiny preset as is, run for a few steps with a log row per step.
RUN = ["--config.train.log_every_steps=1", "--config.train.eval_every_steps=0",
       "--config.train.progress=false", "--config.ckpt.save_every_steps=2",
       "--config.ckpt.async_save=false"]
UMM = [sys.executable, "-m", "unified_mm.cli.main"]


def _losses(workdir) -> dict[int, float]:
  rows = [json.loads(line) for line in pathlib.Path(workdir, "metrics.jsonl").read_text().splitlines()]
  return {r["step"]: r["train/loss"] for r in rows}


def _train_1proc(workdir, steps, env):
  cmd = [*UMM, "train", "--config", CONFIG, "--workdir", str(workdir),
         f"--config.train.steps={steps}", *RUN]
  r = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]


def _train_2proc(workdir, steps, env):
  cmd = [*UMM, "launch", "--target", "local", "--num-processes", "2",
         "--devices-per-process", "4", "--timeout", "500", "--config", CONFIG,
         "--workdir", str(workdir), f"--config.train.steps={steps}", *RUN]
  r = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
  logs = "".join(p.read_text()[-1500:] for p in sorted(pathlib.Path(workdir, "logs").glob("*.log")))
  assert r.returncode == 0, r.stderr[-2000:] + logs
  return r


def _assert_same(got: dict, want: dict, steps):
  for s in steps:
    assert got[s] == pytest.approx(want[s], rel=2e-5, abs=1e-6), (s, got[s], want[s])


@pytest.fixture(scope="module")
def runs(tmp_path_factory, subprocess_env):
  """A 2-process run and a 1-process 8-device run of the same 4 steps."""
  root = tmp_path_factory.mktemp("local")
  _train_2proc(root / "two", 4, subprocess_env(8))
  _train_1proc(root / "one", 4, subprocess_env(8))
  return root


def test_two_processes_train_like_one(runs):
  two, one = _losses(runs / "two"), _losses(runs / "one")
  assert sorted(two) == [1, 2, 3, 4]
  _assert_same(two, one, [1, 2, 3, 4])
  assert two[4] < two[1]  # it trains
  log0 = (runs / "two" / "logs" / "process_0.log").read_text()
  assert "8 devices (2 processes)" in log0 or "(2 processes)" in log0
  # Only process 0 writes metrics: one row per step, not two.
  rows = (runs / "two" / "metrics.jsonl").read_text().splitlines()
  assert len(rows) == 4


@pytest.mark.slow
def test_checkpoints_resume_across_process_counts(runs, subprocess_env):
  env = subprocess_env(8)
  shutil.copytree(runs / "two", runs / "two_then_one")
  shutil.copytree(runs / "one", runs / "one_then_two")
  _train_1proc(runs / "one", 6, env)                 # the reference continues to step 6
  _train_1proc(runs / "two_then_one", 6, env)        # saved by 2 processes, resumed by 1
  _train_2proc(runs / "one_then_two", 6, env)        # saved by 1 process, resumed by 2
  want = _losses(runs / "one")
  _assert_same(_losses(runs / "two_then_one"), want, [5, 6])
  _assert_same(_losses(runs / "one_then_two"), want, [5, 6])


def _children(pid: int) -> list[int]:
  out = []
  for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
    try:
      fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
      continue
    if int(fields[1]) == pid:
      out.append(int(stat.parent.name))
  return out


@pytest.mark.slow
def test_killing_one_process_stops_the_job(tmp_path, subprocess_env):
  workdir = tmp_path / "w"
  cmd = [*UMM, "launch", "--target", "local", "--num-processes", "2",
         "--devices-per-process", "4", "--config", CONFIG, "--workdir", str(workdir),
         "--config.train.steps=100000", *RUN]
  launcher = subprocess.Popen(cmd, cwd=REPO_ROOT, env=subprocess_env(8),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  try:
    deadline = time.monotonic() + 300
    metrics = workdir / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().strip()):  # both are in the loop
      assert launcher.poll() is None, launcher.communicate()[1][-2000:]
      assert time.monotonic() < deadline, "training never started"
      time.sleep(0.5)
    workers = _children(launcher.pid)
    assert len(workers) == 2
    victim = sorted(workers)[1]
    os.kill(victim, signal.SIGKILL)
    _, err = launcher.communicate(timeout=60)  # no hang: the rest is stopped within 60 s
  finally:
    if launcher.poll() is None:
      launcher.kill()
  assert launcher.returncode != 0
  assert "was killed by signal 9" in err and "stopping the other 1 process" in err
  assert all(not pathlib.Path(f"/proc/{p}").exists() or
             "Z" in pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
             for p in workers)


@pytest.mark.slow
def test_jax_heartbeat_stops_a_survivor_without_the_supervisor(tmp_path, subprocess_env):
  """Second line of defence: JAX's coordination service fails the survivor itself."""
  from unified_mm.launch import local
  from unified_mm.launch.spec import LaunchSpec
  from unified_mm.launch.supervisor import Supervisor

  workdir = tmp_path / "w"
  spec = LaunchSpec(config=CONFIG, workdir=str(workdir), devices_per_process=4,
                    overrides=["--config.train.steps=100000", *RUN])
  job = local.render(spec)
  sup = Supervisor(job.commands, [{**subprocess_env(8), **e} for e in job.envs],
                   str(workdir / "logs"), echo=None)
  sup.start()
  try:
    metrics, deadline = workdir / "metrics.jsonl", time.monotonic() + 300
    while not (metrics.exists() and metrics.read_text().strip()):
      assert sup.procs[0].poll() is None and time.monotonic() < deadline
      time.sleep(0.5)
    os.kill(sup.procs[1].pid, signal.SIGKILL)
    sup.procs[0].wait(timeout=90)  # heartbeat timeout (30 s for local runs) + slack
  finally:
    sup.stop()
  assert sup.procs[0].returncode != 0
  assert "stopped sending heartbeats" in (workdir / "logs" / "process_0.log").read_text()
