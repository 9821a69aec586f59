"""One run per workdir: a lock that a killed run does not leave stuck.

`WORKDIR/.lock` is held with `fcntl.flock` for the whole run. The kernel
releases a flock when the last descriptor of its open file closes, which
happens when the process ends however it ends (SIGKILL included), so a run
that died never blocks the next one; the file itself stays and only records
who held it last (pid, host, start time) for the refusal message.

Only process 0 of a multi-process job takes the lock (every process of one
job shares the workdir). A flock is per machine: on a network filesystem two
jobs on different hosts are not kept apart by it.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import pathlib
import socket

import jax

from unified_mm.config.loading import ConfigError

LOCK_NAME = ".lock"


class WorkdirLocked(ConfigError):
  """Another live run holds the workdir (a ConfigError: `umm train` prints it
  as one line and exits 2, like any other argument it cannot use)."""


def _holder(path: pathlib.Path) -> str:
  try:
    info = json.loads(path.read_text())
    return f"pid {info['pid']} on {info['host']}, started {info['started']}"
  except (OSError, ValueError, KeyError):
    return "another process"


@contextlib.contextmanager
def hold_workdir(workdir) -> None:
  """Holds `workdir` for the duration of the block, or raises WorkdirLocked."""
  if jax.process_index() != 0:
    yield
    return
  path = pathlib.Path(workdir) / LOCK_NAME
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirLocked(
          f"--workdir {workdir} is in use by a live run ({_holder(path)}); wait for it to "
          f"finish or stop it, or train in another --workdir") from None
    started = datetime.datetime.now().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                              "started": started}).encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the flock
