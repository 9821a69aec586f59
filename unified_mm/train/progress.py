"""Progress reporting: a one-line bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("unified_mm.train")


def _duration(seconds: float) -> str:
  seconds = int(max(0, seconds))
  h, rest = divmod(seconds, 3600)
  m, s = divmod(rest, 60)
  return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:

  def __init__(self, start_step: int, total_steps: int, enabled: bool = True, stream=None):
    self.stream = stream or sys.stderr
    self.enabled = enabled
    self.tty = enabled and self.stream.isatty()
    self.start_step, self.total = start_step, total_steps
    self.t0 = time.perf_counter()
    self.loss = float("nan")
    self.tokens_per_s = 0.0

  def _eta(self, step: int) -> str:
    done = step - self.start_step
    if done <= 0:
      return "?"
    rate = (time.perf_counter() - self.t0) / done
    return _duration(rate * (self.total - step))

  def update(self, step: int) -> None:
    """Called every step; redraws the bar on a terminal."""
    if not self.tty:
      return
    width = 30
    filled = int(width * step / max(1, self.total))
    bar = "#" * filled + "." * (width - filled)
    loss = "-" if self.loss != self.loss else f"{self.loss:.4f}"  # nan: nothing logged yet
    self.stream.write(f"\r[{bar}] {step}/{self.total} loss {loss} "
                      f"{self.tokens_per_s:,.0f} tok/s ETA {self._eta(step)}  ")
    self.stream.flush()

  def logged(self, step: int, loss: float, tokens_per_s: float) -> None:
    """Called at each logged step: a plain line when not on a terminal."""
    self.loss, self.tokens_per_s = loss, tokens_per_s
    if self.enabled and not self.tty:
      log.info("step %d/%d loss %.4f %.0f tok/s ETA %s", step, self.total, loss,
               tokens_per_s, self._eta(step))

  def clear(self) -> None:
    """Erases the bar so a log line starts on a clean line (redrawn next step)."""
    if self.tty:
      self.stream.write("\r\x1b[K")
      self.stream.flush()

  def close(self) -> None:
    if self.tty:
      self.stream.write("\n")
      self.stream.flush()
