"""Why a record is skipped, and the counters that make every skip visible.

A bad record never crashes the pipeline and is never dropped silently: the
per-record transform turns it into an empty document that carries a one-hot
count of its reason (`counts_vector`), packing carries those counts along
with the real documents of a row, and the training iterator sums them into
`data/examples`, `data/skipped` and `data/skipped_<reason>` (see
`TrainIterator.stats`). The counts are part of the iterator state, so a
resumed run keeps counting from where it stopped.
"""

from __future__ import annotations

import numpy as np

REASONS = (
    "bad_image",      # not an image, truncated or undecodable bytes
    "wrong_shape",    # pixel array not [H, W, 3] uint8, or the wrong size with resize off
    "empty_caption",  # no text after stripping whitespace
    "long_caption",   # caption longer than data.max_caption_chars
    "too_long",       # the tokenised document does not fit in one row of seq_len
    "unreadable",     # a part is missing (image, caption) or damaged (tar member, file chunk)
    "bad_record",     # a record that does not parse, a field of the wrong type, non-UTF-8 text
)
# Not to be renamed or reordered: metric names and the `counts` of saved
# iterator states (by position) depend on them.
# counts_vector layout: [kept, *REASONS]
NUM_COUNTS = 1 + len(REASONS)


class BadRecord(Exception):
  """Raised while reading or tokenising a record; `reason` is one of REASONS."""

  def __init__(self, reason: str, detail: str = ""):
    if reason not in REASONS:
      raise ValueError(f"unknown skip reason {reason!r}")
    super().__init__(f"{reason}: {detail}" if detail else reason)
    self.reason = reason


def counts_vector(reason: str | None) -> np.ndarray:
  """[NUM_COUNTS] int32: one for `kept` (reason None) or for the reason."""
  v = np.zeros((NUM_COUNTS,), np.int32)
  v[0 if reason is None else 1 + REASONS.index(reason)] = 1
  return v


def counts_to_stats(counts) -> dict[str, int]:
  """Summed counts vector -> metric names the trainer logs."""
  counts = [int(c) for c in counts]
  stats = {"data/examples": counts[0], "data/skipped": sum(counts[1:])}
  stats.update({f"data/skipped_{r}": c for r, c in zip(REASONS, counts[1:])})
  return stats
