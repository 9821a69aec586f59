"""One workdir, two runs: a second run on a workdir a live run holds is refused
with one line naming the holder; a run killed with SIGKILL leaves no stuck lock."""

import json
import signal
import subprocess
import sys

import pytest
from fault_procs import runner_cmd, start, wait_for

from unified_mm.train import WorkdirLocked
from unified_mm.train import workdir_lock
from unified_mm.train.workdir_lock import LOCK_NAME, hold_workdir


def _holder_pid(workdir):
  try:
    return json.loads((workdir / LOCK_NAME).read_text())["pid"]
  except (OSError, ValueError, KeyError):
    return None


def test_live_run_refuses_a_second_umm_train_and_a_killed_run_frees_the_workdir(
    tmp_path, runner_env, repo_root):
  workdir = tmp_path / "w"
  # A: a live run on the workdir (slow batches: it is still training when B starts).
  a = start(runner_cmd(workdir, steps=10_000, save_every=1_000, sleep_ms=50), runner_env,
            tmp_path / "a.log")
  try:
    assert wait_for(lambda: _holder_pid(workdir) == a.pid, a), (tmp_path / "a.log").read_text()
    # B: the real `umm train`, the same workdir.
    b = subprocess.run(
        [sys.executable, "-m", "unified_mm.cli.main", "train", "--config", "experiments/lm.py:tiny",
         "--workdir", str(workdir), "--config.train.steps=2"],
        env=runner_env, cwd=repo_root, capture_output=True, text=True, timeout=600)
    assert a.poll() is None, "A should still be running"
    assert b.returncode == 2, b.stderr[-3000:]
    lines = b.stderr.strip().splitlines()
    assert len(lines) == 1, b.stderr[-3000:]
    assert f"--workdir {workdir} is in use by a live run (pid {a.pid} on " in lines[0]
    assert not (workdir / "checkpoints" / "2").exists()
  finally:
    a.send_signal(signal.SIGKILL)
    a.wait(timeout=60)
  # The killed run's lock went with its process: the workdir can be taken at once.
  assert _holder_pid(workdir) == a.pid  # the stale file stays, and does not matter
  with hold_workdir(workdir):
    assert _holder_pid(workdir) not in (None, a.pid)


def test_lock_is_per_open_file_and_released_on_exit(tmp_path):
  with hold_workdir(tmp_path):
    with pytest.raises(WorkdirLocked, match=r"in use by a live run \(pid \d+ on .*, started "):
      with hold_workdir(tmp_path):
        pass
  with hold_workdir(tmp_path):  # released by the first block
    pass


def test_only_process_zero_takes_the_lock(tmp_path, monkeypatch):
  with hold_workdir(tmp_path):
    monkeypatch.setattr(workdir_lock.jax, "process_index", lambda: 1)
    with hold_workdir(tmp_path):  # another process of the same job: shares the workdir
      pass
