"""Runs a local multi-process job: all processes live, or none.

JAX's coordination service also notices a dead peer (after its heartbeat
timeout), but a process blocked in a collective may wait that long; the
supervisor does not wait: as soon as one process fails, the others get
SIGTERM, then SIGKILL after a grace period.

A process that exits with PREEMPTED (it was signalled, saved its checkpoint
and stopped) is not a failure: the others are stopped the same way and the job
exits with PREEMPTED too, as it does when the supervisor itself is signalled
and every process saved. SLURM requeue scripts and pod supervisors read it as
"re-run the same command to resume" (docs/launch.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence

GRACE_SECONDS = 10.0
POLL_SECONDS = 0.2
# unified_mm.train.preemption.PREEMPTED_EXIT_CODE (EX_TEMPFAIL), copied because
# importing the trainer would load JAX into the launcher; a test ties the two.
PREEMPTED = 75


class Supervisor:
  """Starts one subprocess per command, each logging to `log_dir/process_<i>.log`."""

  def __init__(self, commands: Sequence[Sequence[str]], envs: Sequence[Mapping[str, str]],
               log_dir: str, echo=sys.stdout):
    self.commands, self.envs, self.log_dir, self.echo = commands, envs, log_dir, echo
    self.procs: list[subprocess.Popen] = []
    self.log_paths = [os.path.join(log_dir, f"process_{i}.log") for i in range(len(commands))]
    self._echo_pos = 0

  def start(self) -> None:
    os.makedirs(self.log_dir, exist_ok=True)
    for argv, env, path in zip(self.commands, self.envs, self.log_paths):
      with open(path, "wb") as log:
        # A new session per process, so stopping it also stops its children.
        self.procs.append(subprocess.Popen(
            list(argv), env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True))

  def wait(self, timeout: float | None = None) -> int:
    """Returns 0 when every process succeeded, else the first failure's code."""
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
      while True:
        self._echo_process_0()
        codes = [p.poll() for p in self.procs]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if failed:
          i, code = failed[0]
          if code == PREEMPTED:
            print(f"umm launch: process {i} was preempted (it saved its checkpoint); stopping "
                  f"the others the same way", file=sys.stderr)
            self.stop()
            return self._preempted_or(PREEMPTED)
          self._report_failure(i, code)
          self.stop()
          return code if code > 0 else 128 - code
        if all(c == 0 for c in codes):
          self._echo_process_0()
          return 0
        if deadline is not None and time.monotonic() > deadline:
          print(f"umm launch: timed out after {timeout:.0f} s; stopping all processes",
                file=sys.stderr)
          self.stop()
          return 124
        time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
      self.stop()
      return self._preempted_or(130)

  def _preempted_or(self, code: int) -> int:
    """PREEMPTED when every process ended saved (preempted or finished), else `code`."""
    codes = [p.returncode for p in self.procs]
    if codes and all(c in (0, PREEMPTED) for c in codes) and PREEMPTED in codes:
      print(f"umm launch: every process saved; re-run the same command to resume "
            f"(exit code {PREEMPTED})", file=sys.stderr)
      return PREEMPTED
    return code

  def stop(self) -> None:
    """SIGTERM to every live process group, SIGKILL to those still alive after the grace."""
    self._signal_all(signal.SIGTERM)
    end = time.monotonic() + GRACE_SECONDS
    while time.monotonic() < end and any(p.poll() is None for p in self.procs):
      time.sleep(POLL_SECONDS)
    self._signal_all(signal.SIGKILL)
    for p in self.procs:
      p.wait()

  def _signal_all(self, sig: int) -> None:
    for p in self.procs:
      if p.poll() is None:
        try:
          os.killpg(p.pid, sig)
        except ProcessLookupError:
          pass

  def _report_failure(self, i: int, code: int) -> None:
    how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
    print(f"umm launch: process {i} {how}; stopping the other "
          f"{len(self.procs) - 1} process(es). Its log: {self.log_paths[i]}", file=sys.stderr)
    tail = _tail(self.log_paths[i], 20)
    if tail:
      print(f"--- last lines of process {i} ---\n{tail}", file=sys.stderr)

  def _echo_process_0(self) -> None:
    """Mirrors process 0's log on the console, so a local run reads like a single one."""
    if self.echo is None or not self.log_paths:
      return
    try:
      with open(self.log_paths[0], "rb") as f:
        f.seek(self._echo_pos)
        chunk = f.read()
    except FileNotFoundError:
      return
    if chunk:
      self._echo_pos += len(chunk)
      self.echo.write(chunk.decode(errors="replace"))
      self.echo.flush()


def _tail(path: str, lines: int) -> str:
  try:
    with open(path, "rb") as f:
      return b"\n".join(f.read().splitlines()[-lines:]).decode(errors="replace")
  except FileNotFoundError:
    return ""


def _interrupt(signum, frame):
  raise KeyboardInterrupt


def run(commands, envs, log_dir: str, timeout: float | None = None, echo=sys.stdout) -> int:
  """Runs the job to the end; a SIGTERM to the supervisor stops every process."""
  sup = Supervisor(commands, envs, log_dir, echo)
  previous = signal.signal(signal.SIGTERM, _interrupt)
  try:
    sup.start()
    return sup.wait(timeout)
  finally:
    signal.signal(signal.SIGTERM, previous)
