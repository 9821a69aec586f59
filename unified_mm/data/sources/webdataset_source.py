"""WebDataset tar shards in the img2dataset layout, with random access.

A sample is the group of members sharing a key (the basename up to its first
dot, as WebDataset groups them): `000123.jpg` (or png/jpeg/webp), `000123.txt`
(the caption), optionally `000123.json` (metadata; its "boxes", the grounded
layout `[{"label", "box": [x0, y0, x1, y1]}]` in fractions of the image side,
become the record's plan). The shards are indexed once with
`tarfile` (headers only) and members are then read by offset, so Grain can
shuffle, shard and checkpoint by index like any other source. A member that
cannot be read, or a sample without an image or caption, becomes {"error":
"unreadable"}; a caption that is not UTF-8 becomes {"error": "bad_record"}.

Damage does not end a shard: `tarfile` stops at the first header that fails
its checksum, so indexing resumes at the next block that is a valid header.
The damaged member's sample, found by the name the header still holds, is
marked and counts as unreadable (a garbled name makes an entry of its own,
counted too); a shard truncated mid-way keeps the samples before the cut.

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
# The "extension" marking a sample that lost a member to a damaged header. An
# extension comes from a base name, so a real one never holds a "/".
DAMAGED = "/damaged"
_BLOCK = tarfile.BLOCKSIZE


def _split_key(name: str) -> tuple[str, str]:
  directory, base = os.path.split(name)
  key, _, ext = base.partition(".")
  return os.path.join(directory, key), ext.lower()


def _next_header(fd: int, offset: int, size: int) -> int | None:
  """Offset of the first block at or after `offset` that parses as a tar header."""
  while offset + _BLOCK <= size:
    try:
      tarfile.TarInfo.frombuf(os.pread(fd, _BLOCK, offset), tarfile.ENCODING, "surrogateescape")
      return offset
    except tarfile.HeaderError:  # zeros, a failed checksum, or member data
      offset += _BLOCK
  return None


def _index_run(f, offset: int, samples: dict[str, dict[str, Member]]) -> int:
  """Adds the members from `offset` until tarfile stops; returns where it stopped."""
  f.seek(offset)
  tar = None
  try:
    tar = tarfile.open(fileobj=f, mode="r:")  # offsets count from f.tell(): absolute
    for m in tar:
      if m.isfile():
        key, ext = _split_key(m.name)
        samples.setdefault(key, {})[ext] = (m.offset_data, m.size)
  except (tarfile.TarError, OSError):
    pass  # the header where it stopped is looked at by the caller
  return offset if tar is None else tar.offset


def _header_name(block: bytes) -> str:
  """The member name a (possibly damaged) header block still holds."""
  name = tarfile.nts(block[:100], "utf-8", "surrogateescape")
  prefix = tarfile.nts(block[345:500], "utf-8", "surrogateescape")  # ustar: long names
  return f"{prefix}/{name}" if block[257:263] == tarfile.POSIX_MAGIC[:6] and prefix else name


def index_shard(path: str) -> list[dict[str, Member]]:
  """Samples of one shard in file order: [{ext: (offset, size)}]."""
  samples: dict[str, dict[str, Member]] = {}
  damaged = 0
  try:
    f = open(path, "rb")  # noqa: SIM115 (closed below)
  except OSError as e:  # one counted entry, not a crash or a silent gap
    logging.warning("%s: cannot be read, counted as one unreadable sample: %s", path, e)
    return [{DAMAGED: (0, 0)}]
  with f:
    fd, size = f.fileno(), os.fstat(f.fileno()).st_size
    offset = 0
    while offset is not None and offset < size:
      stop = _index_run(f, offset, samples)
      block = os.pread(fd, _BLOCK, stop)
      if block.strip(b"\0"):  # not the zero blocks that end an archive: a lost member
        damaged += 1
        key, _ = _split_key(_header_name(block))
        samples.setdefault(key, {})[DAMAGED] = (stop, 0)
      offset = _next_header(fd, stop + _BLOCK, size)  # also reads on past concatenated tars
  if damaged:
    logging.warning("%s: %d damaged member headers skipped; their samples count as unreadable",
                    path, damaged)
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
    if image_ext is None or "txt" not in sample or DAMAGED in sample:
      return {"error": "unreadable"}
    try:
      record = {"image": self._read(shard, sample[image_ext]),
                "caption": self._read(shard, sample["txt"]).decode("utf-8")}
      if "json" in sample:
        record["meta"] = self._read(shard, sample["json"]).decode("utf-8", "replace")
        boxes = sidecar_boxes(record["meta"])
        if boxes is not None:
          record["boxes"] = boxes
    except OSError:
      return {"error": "unreadable"}
    except UnicodeDecodeError:  # the caption; the metadata is decoded leniently
      return {"error": "bad_record"}
    return record

  def __repr__(self) -> str:
    return f"WebDatasetSource({len(self.paths)} shards, {len(self)} samples)"
