"""Preemption (SIGTERM) and Ctrl-C (SIGINT) handling: the signal only sets a
flag; the loop sees it between steps, saves a checkpoint for the current step
and returns. The command then exits with PREEMPTED_EXIT_CODE, so whatever
started it (SLURM, a pod supervisor, `umm demo`) can tell "stopped early, state
saved, re-run to resume" from success and from failure."""

from __future__ import annotations

import logging
import signal
import threading

import jax
import numpy as np

log = logging.getLogger("unified_mm.train")

# sysexits.h EX_TEMPFAIL ("temporary failure; the user is invited to retry"):
# what requeueing supervisors conventionally read as "run me again". Never 0,
# so a preempted job cannot pass for a finished one. unified_mm/launch/supervisor.py
# keeps its own copy of the number (it must not import JAX); a test ties the two.
PREEMPTED_EXIT_CODE = 75

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class PreemptionFlag:
  """Within `with PreemptionFlag() as flag:`, SIGTERM and SIGINT set the flag.

  A second SIGINT (Ctrl-C pressed again) raises KeyboardInterrupt as usual:
  whoever insists gets their terminal back, at the cost of the save in flight.
  Only SIGINT counts towards that, because `umm demo` forwards a SIGTERM to its
  stages on top of the SIGINT a terminal sends them.
  """

  def __init__(self, on_signal: str = "will save a checkpoint and stop after this step"):
    self._event = threading.Event()
    self._previous: dict = {}
    self._interrupts = 0
    self._on_signal = on_signal

  def __enter__(self) -> "PreemptionFlag":
    if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
      self._previous = {s: signal.signal(s, self._handle) for s in SIGNALS}
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}

  def _handle(self, signum, frame) -> None:
    if signum == signal.SIGINT:
      self._interrupts += 1
      if self._interrupts > 1:
        raise KeyboardInterrupt
    log.warning("%s received: %s", signal.Signals(signum).name, self._on_signal)
    self._event.set()

  def set(self) -> None:
    self._event.set()

  def requested(self) -> bool:
    """True when any process was asked to stop (all processes must agree)."""
    local = self._event.is_set()
    if jax.process_count() == 1:
      return local
    from jax.experimental import multihost_utils
    flags = multihost_utils.process_allgather(np.asarray(local))
    return bool(np.any(flags))
