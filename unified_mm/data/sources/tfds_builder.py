"""TFDS from local files, without TensorFlow: a builder and a reader.

`ImageCaptionBuilder` turns a directory of `NAME.{png,jpg,jpeg,webp}` +
`NAME.txt` pairs (and optionally `NAME.json` with the grounded layout,
`{"boxes": [{"label", "box": [x0, y0, x1, y1]}]}`, fractions of the side)
into a TFDS data set stored as ArrayRecord; the boxes are kept as JSON text.
Images are handed to TFDS as encoded bytes (a numpy image would need TF to
encode) and captions as their file's bytes; a `NAME.txt` without an image, or
an image without one, gets an empty one. Neither is validated at build time:
the reader counts and skips bad ones (empty or undecodable images, empty or
non-UTF-8 captions) like every other source does. `TfdsSource` reads that
data set, or any TFDS data set prepared in the ArrayRecord format, through
`builder.as_data_source()` with image decoding skipped, so `decode.py` does the
decoding (and the validating).

TFDS caches by name and version under `data_dir`: build each input directory
into its own `data_dir`.
"""

from __future__ import annotations

import json
import os
import pathlib
from typing import Any

import tensorflow_datasets as tfds

from unified_mm.data.record_codec import sidecar_boxes
from unified_mm.data.sources.webdataset_source import IMAGE_EXTS


class ImageCaptionBuilder(tfds.core.GeneratorBasedBuilder):
  """`ImageCaptionBuilder(source_dir=..., data_dir=..., file_format="array_record")`."""

  name = "umm_image_caption"
  VERSION = tfds.core.Version("1.2.0")
  RELEASE_NOTES = {"1.0.0": "Images and captions from a local directory.",
                   "1.1.0": "Optional grounded boxes (JSON text, empty when none).",
                   "1.2.0": "Captions stored as their file's bytes (non-UTF-8 ones are "
                            "counted by the reader, not replaced); captions without an "
                            "image kept, with empty image bytes."}

  # No download checksums or package metadata belong to this builder; saying
  # so keeps TFDS from probing the package with `importlib_resources`, which
  # a TF-free install may not have.
  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    return None

  def __init__(self, *, source_dir: str | None = None, **kwargs):
    self._source_dir = source_dir
    kwargs.setdefault("file_format", "array_record")
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="Image-caption pairs read from local files.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(None, None, 3)),
            "caption": tfds.features.Text(),
            "boxes": tfds.features.Text(),
            "key": tfds.features.Text(),
        }))

  def _split_generators(self, dl_manager):
    if not self._source_dir:
      raise ValueError("ImageCaptionBuilder needs source_dir= to build")
    return {"train": self._generate_examples(pathlib.Path(self._source_dir))}

  def _generate_examples(self, source_dir: pathlib.Path):
    files: dict[str, dict[str, pathlib.Path]] = {}
    for path in sorted(source_dir.iterdir()):
      key, _, ext = path.name.partition(".")
      files.setdefault(key, {})[ext.lower()] = path
    for key, parts in files.items():
      image = next((parts[e] for e in IMAGE_EXTS if e in parts), None)
      if image is None and "txt" not in parts:
        continue  # a stray sidecar or another file: no sample
      # Bytes as they are, and empty when missing (a TFDS record has every
      # feature): the reader counts an empty image or caption, or one that is
      # not UTF-8, instead of this build dropping or repairing it unseen.
      caption = parts["txt"].read_bytes() if "txt" in parts else b""
      boxes = sidecar_boxes(parts["json"].read_bytes()) if "json" in parts else None
      yield key, {"image": b"" if image is None else image.read_bytes(), "caption": caption,
                  "key": key,
                  "boxes": "" if boxes is None else json.dumps(boxes)}


def build_tfds(source_dir: str, data_dir: str) -> str:
  """Builds the data set; returns the directory `TfdsSource` reads."""
  builder = ImageCaptionBuilder(source_dir=source_dir, data_dir=data_dir)
  builder.download_and_prepare()
  return os.fspath(builder.data_path)


class TfdsSource:
  """`__getitem__(i)` -> {"image": bytes, "caption": str, "meta": key[, "boxes": list]}.

  `boxes_key` names a JSON-text feature holding the grounded layout (this
  module's builder writes "boxes"); records without it, or with it empty, are
  plain image-caption records."""

  def __init__(self, builder_dir: str, split: str = "train", image_key: str = "image",
               caption_key: str = "caption", boxes_key: str = "boxes"):
    self.builder_dir = builder_dir
    self.split = split
    self.image_key = image_key
    self.caption_key = caption_key
    self.boxes_key = boxes_key
    self._source = None
    self._len = len(self._data())

  def __getstate__(self):
    return self.__dict__ | {"_source": None}  # reopened in each worker

  def _data(self):
    if self._source is None:
      builder = tfds.builder_from_directory(self.builder_dir)
      self._source = builder.as_data_source(
          split=self.split, decoders={self.image_key: tfds.decode.SkipDecoding()})
    return self._source

  def __len__(self) -> int:
    return self._len

  def __getitem__(self, index: int) -> dict[str, Any]:
    try:
      ex = self._data()[index]
    except Exception:  # a damaged shard surfaces as whatever array_record raises
      return {"error": "unreadable"}
    if self.image_key not in ex or self.caption_key not in ex:
      return {"error": "unreadable"}
    caption = ex[self.caption_key]
    if isinstance(caption, bytes):
      try:
        caption = caption.decode("utf-8")
      except UnicodeDecodeError:
        return {"error": "bad_record"}
    record = {"image": ex[self.image_key], "caption": caption}
    if "key" in ex:
      key = ex["key"]
      record["meta"] = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    if ex.get(self.boxes_key):
      boxes = sidecar_boxes(ex[self.boxes_key])
      if boxes is None:
        return {"error": "bad_record"}
      record["boxes"] = boxes
    return record

  def __repr__(self) -> str:
    return f"TfdsSource({self.builder_dir!r}, split={self.split!r}, {len(self)} records)"
