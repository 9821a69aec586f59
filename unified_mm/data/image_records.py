"""The image stages' input (tokenizer, renderer) from any source the transformer reads.

    MapDataset.source(records)[:n - held_out][host::hosts]   this host's share of the training part
      .shuffle(seed).repeat(epochs)
      .map_with_index(RecordToImage)       decode + centre-crop/resize to the stage's side, check the
                                           caption, keep pre-tokenised codes/latents
      .to_iter_dataset(ReadOptions) [.mp_prefetch(num_workers)]
    ImageBatchIterator                     `local_batch_size` kept records a batch, skipped ones counted

The sources, the decoder and the skip reasons are the transformer's
(`pipeline.py`, `decode.py`, `bad_records.py`); only the map differs, since an
image stage wants pixels (or their pre-computed codes and latents), not a
tokenised document. A bad record yields a row holding only its one-hot count,
so `ImageBatchIterator` tops the batch up from the next records and the skip
shows in `stats()`. Its state is Grain's plus the counts (JSON), so a resumed
run sees exactly the batches it would have seen (with the same `num_workers`).

The last `data.held_out_records` records of a finite source are never trained
on: `held_out_rows` reads them (in order, whole) for the stage's evaluators.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from typing import Any

import grain
import ml_collections
import numpy as np

from unified_mm.data.bad_records import BadRecord, counts_vector
from unified_mm.data.counted_grain import CountedGrainIterator
from unified_mm.data.decode import decode_image
from unified_mm.data.documents import checked_text
from unified_mm.data.pipeline import _ensure_absl_flags_parsed
from unified_mm.data.sources.registry import make_source

Row = dict[str, Any]
# A source whose records are all bad would otherwise loop forever looking for a batch.
MAX_SKIPS_IN_A_ROW = 10_000


@dataclasses.dataclass
class RecordToImage:
  """Record -> {"image" uint8 [S, S, 3] | the `pretokenised` arrays, "caption"?, "boxes"?,
  "index", "counts"}. Picklable (Grain workers)."""

  image_size: int
  resize: bool = True
  need_caption: bool = False
  max_caption_chars: int = 1000
  # Keys that, when a record holds all of them, stand in for its image (no decode);
  # with their expected shapes (a mismatch is `wrong_shape`: another tokenizer's).
  pretokenised: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)

  def __call__(self, index: int, record: dict[str, Any]) -> Row:
    try:
      row, reason = self._row(record), None
    except BadRecord as e:
      row, reason = {}, e.reason
    row["index"] = np.int64(index)
    row["counts"] = counts_vector(reason)
    return row

  def _row(self, record: dict[str, Any]) -> Row:
    if record.get("error"):
      raise BadRecord(record["error"], "reported by the source")
    row: Row = {}
    if self.need_caption:
      row["caption"] = checked_text(record.get("caption"), "caption", self.max_caption_chars)
    if self.pretokenised and all(record.get(k) is not None for k in self.pretokenised):
      for key, shape in self.pretokenised.items():
        value = np.asarray(record[key])
        if tuple(value.shape) != tuple(shape):
          raise BadRecord("wrong_shape", f"{key} {list(value.shape)}, expected {list(shape)}")
        row[key] = value
    else:
      if record.get("image") is None:
        raise BadRecord("unreadable", "record without an image")
      row["image"] = decode_image(record["image"], self.image_size, self.resize)
    if record.get("boxes"):
      row["boxes"] = json.dumps(record["boxes"])  # text: rows stay flat through workers
    return row


def image_source(data: ml_collections.ConfigDict):
  """`data.source` opened once (a WebDataset source indexes its shards when made)."""
  return make_source(data)


def _records(data: ml_collections.ConfigDict, source) -> grain.MapDataset:
  """The source's records before the held-out tail."""
  held_out = int(data.get("held_out_records", 0))
  if held_out and held_out >= len(source):
    from unified_mm.config.loading import ConfigError  # noqa: PLC0415
    raise ConfigError(f"data.held_out_records={held_out}: the source has only {len(source)}")
  ds = grain.MapDataset.source(source)
  return ds[:len(source) - held_out] if held_out else ds


def image_dataset(data: ml_collections.ConfigDict, to_image: RecordToImage, source, *,
                  process_index: int, process_count: int) -> grain.IterDataset:
  """One row per record of this host's share, shuffled and repeated (Grain)."""
  ds = _records(data, source)[process_index::process_count]
  ds = ds.shuffle(seed=int(data.seed)).repeat(int(data.get("num_epochs", 0)) or None)
  ds = ds.map_with_index(to_image)
  it = ds.to_iter_dataset(grain.ReadOptions(
      num_threads=int(data.get("read_threads", 0)),
      prefetch_buffer_size=int(data.get("prefetch_buffer_size", 64))))
  workers = int(data.get("num_workers", 0))
  if workers > 0:
    _ensure_absl_flags_parsed()
    it = it.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
  return it


def held_out_rows(data: ml_collections.ConfigDict, to_image: RecordToImage, source
                  ) -> list[Row]:
  """The kept rows of the last `data.held_out_records` records, in order (every host the same)."""
  n = int(data.get("held_out_records", 0))
  rows = [to_image(i, source[i]) for i in range(len(source) - n, len(source))] if n else []
  return [r for r in rows if r.pop("counts")[0]]


def stack_images(rows: Sequence[Row]) -> dict[str, np.ndarray]:
  """The tokenizer's batch: {"image": uint8 [B, S, S, 3]}."""
  return {"image": np.stack([r["image"] for r in rows])}


class ImageBatchIterator(CountedGrainIterator):
  """Host-local batches of `local_batch_size` kept rows, made by `to_batch(rows)`;
  satisfies tasks.base.DataIterator, with `stats()` like the transformer's."""

  def __init__(self, dataset: grain.IterDataset, local_batch_size: int,
               to_batch: Callable[[list[Row]], dict[str, np.ndarray]] = stack_images):
    super().__init__(dataset)
    self.local_batch_size = local_batch_size
    self.to_batch = to_batch

  def __next__(self) -> dict[str, np.ndarray]:
    rows, skipped = [], 0
    while len(rows) < self.local_batch_size:
      row = next(self._it)  # StopIteration after data.num_epochs passes
      counts = row.pop("counts")
      self._counts += counts
      if counts[0]:
        rows.append(row)
        skipped = 0
      elif (skipped := skipped + 1) >= MAX_SKIPS_IN_A_ROW:
        raise RuntimeError(f"{skipped} bad records in a row; so far {self.stats()}")
    return self.to_batch(rows)


def pretokenised_keys(source, keys: Sequence[str]) -> list[str]:
  """Which of `keys` the source's first record holds (what the stage will log it reads)."""
  if not len(source):
    return []
  first = source[0]
  return [k for k in keys if first.get(k) is not None]
