"""The serialised form of one record in the framework's ArrayRecord files.

A record is the dict every source yields:

  caption   str
  image     encoded bytes (PNG/JPEG) or a uint8 pixel array
  codes     optional pre-tokenised image codes (int array [h, w])
  latent    optional pre-computed normalised tokenizer latent (float32 [Hh, Ww, Cz]; the renderer's)
  edits     optional list of {"instruction": str, "image": ..., "codes": ...},
            or a zero-argument callable returning it, for sources that build
            edits only when a document uses them (read it with `edits_of`)
  exact_caption  optional bool: the caption names everything in the image (else a
            plain document may read the description instead, data.plain_description)
  boxes     optional grounded layout: [{"label": str, "box": [x0, y0, x1, y1]}], corners
            as fractions of the image side, x1/y1 exclusive (data/layout.py)
  meta      optional JSON string (the shapes scene graph, a URL, ...)

Layout: b"UMR1", a little-endian u32 header length, a JSON header, then the
binary blobs back to back. Arrays are stored raw with dtype and shape in the
header; bytes are stored as they are. No pickle, so a file from an untrusted
source cannot run code, and no TensorFlow.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from unified_mm.data.bad_records import BadRecord

MAGIC = b"UMR1"
_BLOB_KEYS = ("image", "codes", "latent")  # appended only: old files decode alike
_TEXT_KEYS = ("caption", "description", "boxes", "meta", "error", "exact_caption")  # JSON values


def _blob(value) -> tuple[dict[str, Any], bytes]:
  if isinstance(value, np.ndarray):
    value = np.ascontiguousarray(value)
    return {"kind": "array", "dtype": value.dtype.str, "shape": list(value.shape)}, value.tobytes()
  return {"kind": "bytes"}, bytes(value)


def sidecar_boxes(text: str | bytes) -> Any:
  """The "boxes" of a JSON sidecar (a WebDataset sample's .json, a TFDS record's
  boxes text): None when it has none or is not JSON (it is then only metadata).
  What it holds is checked where a document is made (malformed: skipped, counted)."""
  try:
    value = json.loads(text)
  except (ValueError, UnicodeDecodeError):
    return None
  if isinstance(value, dict):
    return value.get("boxes")
  return value if isinstance(value, list) else None


def edits_of(record: dict[str, Any]) -> list[dict[str, Any]]:
  edits = record.get("edits") or []
  return list(edits()) if callable(edits) else list(edits)


def encode(record: dict[str, Any]) -> bytes:
  header: dict[str, Any] = {k: record[k] for k in _TEXT_KEYS if k in record}
  blobs: list[bytes] = []

  def put(part: dict[str, Any], out: dict[str, Any]) -> None:
    for key in _BLOB_KEYS:
      if part.get(key) is not None:
        desc, data = _blob(part[key])
        out[key] = desc | {"size": len(data)}
        blobs.append(data)

  put(record, header)
  edits = edits_of(record)
  if edits:
    header["edits"] = []
    for e in edits:
      h = {"instruction": e["instruction"]}
      put(e, h)
      header["edits"].append(h)
  head = json.dumps(header).encode("utf-8")
  return MAGIC + struct.pack("<I", len(head)) + head + b"".join(blobs)


def decode(data: bytes) -> dict[str, Any]:
  """Raises BadRecord("bad_record") for anything that is not a whole record."""
  try:
    if data[:4] != MAGIC:
      raise ValueError("bad magic")
    (n,) = struct.unpack("<I", data[4:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    offset = 8 + n

    def take(part: dict[str, Any]) -> dict[str, Any]:
      nonlocal offset
      out = {k: v for k, v in part.items() if k not in _BLOB_KEYS}
      for key in _BLOB_KEYS:
        if key in part:
          desc = part[key]
          raw = data[offset:offset + desc["size"]]
          if len(raw) != desc["size"]:
            raise ValueError(f"{key}: {len(raw)} of {desc['size']} bytes")
          offset += desc["size"]
          out[key] = (np.frombuffer(raw, np.dtype(desc["dtype"])).reshape(desc["shape"])
                      if desc["kind"] == "array" else bytes(raw))
      return out

    record = take({k: v for k, v in header.items() if k != "edits"})
    if "edits" in header:
      record["edits"] = [take(e) for e in header["edits"]]
    return record
  except Exception as e:
    raise BadRecord("bad_record", f"{type(e).__name__}: {e}") from e
