"""Helpers of the fault suite: run, start and watch child processes (a module of
its own: `from conftest import` resolves to whichever conftest pytest loaded last)."""

import pathlib
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent


def runner_cmd(workdir, **opts) -> list[str]:
  """The toy run on `workdir`; the same options make the same run (a resume)."""
  return [sys.executable, str(HERE / "toy_runner.py"), str(workdir),
          *(f"{k}={v}" for k, v in opts.items())]


def start(cmd, env, log, cwd=None) -> subprocess.Popen:
  with open(log, "w") as f:  # the child keeps its own copy of the descriptor
    return subprocess.Popen(cmd, env=env, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)


def wait_for(until, proc=None, timeout=600.0, poll=0.01) -> bool:
  """Polls `until()`; False on timeout or if `proc` ended first."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if until():
      return True
    if proc is not None and proc.poll() is not None:
      return bool(until())
    time.sleep(poll)
  return False
