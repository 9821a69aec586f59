"""SIGTERM (preemption) handling: the signal only sets a flag; the loop sees it
between steps, saves a checkpoint for the current step and exits cleanly."""

from __future__ import annotations

import logging
import signal
import threading

import jax
import numpy as np

log = logging.getLogger("unified_mm.train")


class PreemptionFlag:

  def __init__(self):
    self._event = threading.Event()
    self._previous = None

  def __enter__(self) -> "PreemptionFlag":
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)

  def _handle(self, signum, frame) -> None:
    log.warning("SIGTERM received: will save a checkpoint and stop after this step")
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
