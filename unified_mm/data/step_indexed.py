"""A host's share of a stream whose rows are a pure function of their global index.

Step s, host p of P, local batch b -> global rows (s*P + p)*b ... (s*P + p)*b + b - 1.
The state is just the step, so a resumed run draws exactly the rows an
uninterrupted one would, and hosts never overlap. Subclasses say how rows
become a batch (`batch_for(rows)`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class StepIndexedIterator:

  def __init__(self, process_index: int, process_count: int, local_batch_size: int):
    self.process_index, self.process_count = process_index, process_count
    self.local_batch_size = local_batch_size
    self.step = 0

  def batch_for(self, rows: range) -> dict[str, np.ndarray]:
    raise NotImplementedError

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self

  def __next__(self) -> dict[str, np.ndarray]:
    start = (self.step * self.process_count + self.process_index) * self.local_batch_size
    self.step += 1
    return self.batch_for(range(start, start + self.local_batch_size))

  def get_state(self) -> dict:
    return {"step": self.step, "process_index": self.process_index,
            "process_count": self.process_count}

  def set_state(self, state: dict) -> None:
    self.step = int(state["step"])
