"""WebDataset tar shards in the img2dataset layout, with random access.

A sample is the group of members sharing a key (the basename up to its first
dot, as WebDataset groups them): `000123.jpg` (or png/jpeg/webp), `000123.txt`
(the caption), optionally `000123.json` (metadata; its "boxes", the grounded
layout `[{"label", "box": [x0, y0, x1, y1]}]` in fractions of the image side,
become the record's plan). The shards are indexed once with
`tarfile` (headers only) and members are then read by offset, so Grain can
shuffle, shard and checkpoint by index like any other source. A member that
cannot be read, or a sample without an image, becomes {"error": "unreadable"};
a shard truncated mid-way keeps the samples before the damage.

For very many shards, index once and materialise with `umm data build
--source wds` to ArrayRecord instead of indexing at every start.
"""

from __future__ import annotations

import logging
import os
import tarfile
from collections.abc import Sequence
from typing import Any

from unified_mm.data.record_codec import sidecar_boxes
from unified_mm.data.sources.array_record_source import expand_paths

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")
Member = tuple[int, int]  # (offset of the data in the shard, size)
MAX_OPEN_SHARDS = 64


def _split_key(name: str) -> tuple[str, str]:
  directory, base = os.path.split(name)
  key, _, ext = base.partition(".")
  return os.path.join(directory, key), ext.lower()


def index_shard(path: str) -> list[dict[str, Member]]:
  """Samples of one shard in file order: [{ext: (offset, size)}]."""
  samples: dict[str, dict[str, Member]] = {}
  try:
    with tarfile.open(path, "r:") as tar:
      for m in tar:
        if m.isfile():
          key, ext = _split_key(m.name)
          samples.setdefault(key, {})[ext] = (m.offset_data, m.size)
  except (tarfile.TarError, OSError) as e:
    logging.warning("%s: indexing stopped at %d samples: %s", path, len(samples), e)
  return list(samples.values())


class WebDatasetSource:
  """`__getitem__(i)` -> {"image": bytes, "caption": str[, "meta": str, "boxes": list]}
  or {"error": ...}."""

  def __init__(self, paths: str | Sequence[str]):
    self.paths = expand_paths(paths)
    self._index: list[tuple[int, dict[str, Member]]] = [
        (s, sample) for s, p in enumerate(self.paths) for sample in index_shard(p)]
    self._files: dict[int, Any] = {}

  def __getstate__(self):
    return {"paths": self.paths, "_index": self._index, "_files": {}}  # handles stay local

  def __len__(self) -> int:
    return len(self._index)

  def _read(self, shard: int, member: Member) -> bytes:
    f = self._files.get(shard)
    if f is None:
      if len(self._files) >= MAX_OPEN_SHARDS:  # thousands of shards: stay under the fd limit
        self._files.pop(next(iter(self._files))).close()
      f = self._files[shard] = open(self.paths[shard], "rb")  # noqa: SIM115 (kept open)
    offset, size = member
    data = os.pread(f.fileno(), size, offset)
    if len(data) != size:
      raise OSError(f"member at {offset}: read {len(data)} of {size} bytes")
    return data

  def __getitem__(self, index: int) -> dict[str, Any]:
    shard, sample = self._index[index]
    image_ext = next((e for e in IMAGE_EXTS if e in sample), None)
    if image_ext is None or "txt" not in sample:
      return {"error": "unreadable"}
    try:
      record = {"image": self._read(shard, sample[image_ext]),
                "caption": self._read(shard, sample["txt"]).decode("utf-8", "replace")}
      if "json" in sample:
        record["meta"] = self._read(shard, sample["json"]).decode("utf-8", "replace")
        boxes = sidecar_boxes(record["meta"])
        if boxes is not None:
          record["boxes"] = boxes
    except OSError:
      return {"error": "unreadable"}
    return record

  def __repr__(self) -> str:
    return f"WebDatasetSource({len(self.paths)} shards, {len(self)} samples)"
