"""Metric files of a workdir: `metrics.jsonl` (one object per logged step) and
TensorBoard events in `tb/` (written with tensorboardX, which needs no
TensorFlow). Only process 0 writes; on other processes this is a no-op.

A reader may run while a trainer writes, or after one was killed mid-line:
`read_metrics_rows` returns whole lines only, and a writer that reopens a file
ending in a fragment ends that line first so the next row stays parseable.
"""

from __future__ import annotations

import json
import math
import pathlib

import jax


class MetricWriter:

  def __init__(self, workdir: str | pathlib.Path, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self._jsonl = self._tb = None
    if self.enabled:
      workdir = pathlib.Path(workdir)
      workdir.mkdir(parents=True, exist_ok=True)
      from tensorboardX import SummaryWriter
      path = workdir / "metrics.jsonl"
      cut = _ends_mid_line(path)
      self._jsonl = open(path, "a", encoding="utf-8")
      if cut:  # a kill mid-write left a fragment: end it rather than glue the next row on
        self._jsonl.write("\n")
      self._tb = SummaryWriter(str(workdir / "tb"), flush_secs=10)

  def write(self, step: int, scalars: dict[str, float]) -> None:
    if not self.enabled:
      return
    row = {"step": int(step)}
    row.update({k: _json_number(v) for k, v in scalars.items()})
    self._jsonl.write(json.dumps(row) + "\n")
    self._jsonl.flush()
    for name, value in scalars.items():
      self._tb.add_scalar(name, float(value), int(step))

  def flush(self) -> None:
    if self.enabled:
      self._jsonl.flush()
      self._tb.flush()

  def close(self) -> None:
    if self.enabled:
      self._jsonl.close()
      self._tb.close()
      self.enabled = False


def _ends_mid_line(path: pathlib.Path) -> bool:
  """Does the file end in a fragment? Only its last byte is read (a long run's file is large)."""
  try:
    with open(path, "rb") as f:
      f.seek(0, 2)
      if not f.tell():
        return False
      f.seek(-1, 2)
      return f.read(1) != b"\n"
  except FileNotFoundError:
    return False


def read_metrics_rows(path: str | pathlib.Path) -> list[dict]:
  """The rows of a metrics.jsonl, in order. A line not yet ended (being written)
  or not JSON (cut by a kill) is left out; a missing file has no rows."""
  path = pathlib.Path(path)
  if path.suffix != ".jsonl":  # a workdir (perhaps not created yet)
    path = path / "metrics.jsonl"
  try:
    text = path.read_text(encoding="utf-8")
  except FileNotFoundError:
    return []
  rows = []
  for line in text.split("\n")[:-1]:
    try:
      rows.append(json.loads(line))
    except ValueError:
      continue
  return rows


def _json_number(v) -> float | int | str:
  v = float(v) if not isinstance(v, int) else v
  if isinstance(v, float) and not math.isfinite(v):
    return str(v)  # JSON has no NaN/Inf; keep the line parseable
  return v
