"""Materialises any source to one ArrayRecord file of serialised records.

Images are stored PNG-encoded by default (lossless and ~5x smaller than raw
pixels for flat shapes scenes). With `codes_fn`, every image also gets its
pre-tokenised codes, computed in batches of `codes_batch` images: a run that
reads the file then never calls the image tokenizer (see documents.py). With
`encode_fn` (images -> {"codes": [N, h, w], "latent": [N, Hh, Ww, Cz]}, the frozen
tokenizer's frontend) every image also gets its normalised latent, which the
renderer stage reads instead of encoding (tasks/image_data.py).
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
from array_record.python import array_record_module

from unified_mm.data import record_codec
from unified_mm.data.bad_records import BadRecord
from unified_mm.data.decode import decode_image, encode_png
from unified_mm.data.record_codec import edits_of


def _parts(record: dict[str, Any]) -> list[dict[str, Any]]:
  """The record and its edits as separate dicts (the record's own edits resolved)."""
  record = dict(record)
  record["edits"] = [dict(e) for e in edits_of(record)]
  return [record, *record["edits"]]


def _add_codes(parts: list[dict[str, Any]], encode_fn, image_size: int, resize: bool) -> None:
  """One encode_fn call for all decodable images; bad images are left for the reader to count."""
  todo, images = [], []
  for p in parts:
    if p.get("image") is None or p.get("codes") is not None:
      continue
    try:
      images.append(decode_image(p["image"], image_size, resize))
      todo.append(p)
    except BadRecord:
      pass
  if images:
    encoded = encode_fn(np.stack(images))
    for i, p in enumerate(todo):
      p["codes"] = np.asarray(encoded["codes"][i], np.int32)
      if "latent" in encoded:
        p["latent"] = np.asarray(encoded["latent"][i], np.float32)


def _encode_images(part: dict[str, Any], image_format: str) -> None:
  if image_format == "png" and isinstance(part.get("image"), np.ndarray):
    part["image"] = encode_png(part["image"])


def build_array_record(source, out: str | pathlib.Path, *, limit: int | None = None,
                       image_format: str = "png", codes_fn=None, image_size: int = 64,
                       resize: bool = True, codes_batch: int = 64, encode_fn=None) -> int:
  """Writes records 0..min(len(source), limit)-1 of `source` to `out`; returns the count.

  Records the source reports as broken are written as they are: the reader
  counts and skips them, so a build never hides what was wrong with the input.
  """
  if image_format not in ("png", "raw"):
    raise ValueError(f"image_format {image_format!r} is not png or raw")
  if encode_fn is None and codes_fn is not None:
    encode_fn = lambda images: {"codes": codes_fn(images)}  # noqa: E731
  n = len(source) if limit is None else min(len(source), limit)
  out = pathlib.Path(out)
  out.parent.mkdir(parents=True, exist_ok=True)
  writer = array_record_module.ArrayRecordWriter(str(out), "group_size:1")
  try:
    for start in range(0, n, codes_batch):
      chunk = [_parts(source[i]) for i in range(start, min(n, start + codes_batch))]
      if encode_fn is not None:
        _add_codes([p for parts in chunk for p in parts], encode_fn, image_size, resize)
      for record, *edits in chunk:
        for part in (record, *edits):
          _encode_images(part, image_format)
        writer.write(record_codec.encode(record))
  finally:
    writer.close()
  return n
