"""A Grain iterator with bad-record counts in its JSON state: what the transformer's
batches (`pipeline.TrainIterator`) and the image stages' (`image_records.ImageBatchIterator`)
share. The counts ride in the checkpoint with Grain's own state, so a resumed run
goes on counting where it stopped."""

from __future__ import annotations

import json
from typing import Any

import grain
import numpy as np

from unified_mm.data import bad_records


class CountedGrainIterator:
  """Subclasses add `__next__`, adding each batch's per-reason counts to `_counts`."""

  def __init__(self, dataset: grain.IterDataset):
    self._it = iter(dataset)
    self._counts = np.zeros((bad_records.NUM_COUNTS,), np.int64)

  def __iter__(self):
    return self

  def get_state(self) -> dict[str, Any]:
    state = {"grain": self._it.get_state(), "counts": [int(c) for c in self._counts]}
    json.dumps(state)  # fail here, not inside a checkpoint save, if Grain's state changes
    return state

  def set_state(self, state: dict[str, Any]) -> None:
    self._it.set_state(state["grain"])
    self._counts = np.asarray(state["counts"], np.int64)

  def stats(self) -> dict[str, int]:
    """Cumulative `data/examples`, `data/skipped`, `data/skipped_<reason>` (loggable)."""
    return bad_records.counts_to_stats(self._counts)

  def close(self) -> None:
    close = getattr(self._it, "close", None)
    if close is not None:
      close()
