"""Real photographs that scikit-image ships (no network), with short hand-written
captions, written as WebDataset shards, a TFDS data set and an ArrayRecord file."""

from __future__ import annotations

import io
import pathlib
import tarfile

import numpy as np
import pytest
from PIL import Image

PHOTOS = {  # file in skimage/data -> caption
    "astronaut.png": "an astronaut in a white suit in front of a flag",
    "chelsea.png": "a tabby cat looking to the side",
    "coffee.png": "a cup of coffee on a saucer",
    "rocket.jpg": "a rocket on its launch pad",
    "motorcycle_left.png": "a red motorcycle in a workshop",
    "hubble_deep_field.jpg": "galaxies in the deep night sky",
    "retina.jpg": "a photograph of the back of an eye",
    "ihc.png": "stained tissue under a microscope",
    "camera.png": "a man with a camera on a tripod",
    "coins.png": "old coins on a dark background",
    "grass.png": "a patch of green grass",
    "brick.png": "a grey brick wall",
}


def photos_dir() -> pathlib.Path:
  skimage = pytest.importorskip("skimage")  # the `test` extra installs it
  return pathlib.Path(skimage.__file__).parent / "data"


def photo_items(size: int | None = None) -> list[tuple[bytes, str]]:
  """(encoded image, caption) for each photo; re-encoded as PNG at `size` px when given
  (a smaller file, still the photograph)."""
  items = []
  for name, caption in PHOTOS.items():
    data = (photos_dir() / name).read_bytes()
    if size:
      img = Image.open(io.BytesIO(data)).convert("RGB")
      img.thumbnail((size * 2, size * 2))
      buf = io.BytesIO()
      img.save(buf, format="PNG")
      data = buf.getvalue()
    items.append((data, caption))
  return items


BAD = [(b"\x89PNG\r\n\x1a\n truncated", "a broken download"), (None, "   ")]  # bad_image, empty


def write_shard(path: pathlib.Path, items, start: int = 0) -> None:
  """img2dataset layout: NNNN.png + NNNN.txt (an item with image None has a blank one)."""
  with tarfile.open(path, "w") as tar:
    for i, (image, caption) in enumerate(items, start):
      members = {"txt": caption.encode("utf-8")}
      if image is not None:
        members["png" if image[:4] == b"\x89PNG" else "jpg"] = image
      else:
        members["png"] = b""
      for ext, data in members.items():
        info = tarfile.TarInfo(f"{i:06d}.{ext}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def write_image_dir(directory: pathlib.Path, items) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  for i, (image, caption) in enumerate(items):
    (directory / f"{i:06d}.png").write_bytes(image or b"")
    (directory / f"{i:06d}.txt").write_text(caption)


def write_sources(root: pathlib.Path, size: int) -> dict[str, str]:
  """The 12 photos + the 2 bad records as WebDataset shards, a TFDS data set and an
  ArrayRecord file: source name -> the `data.path` that reads it."""
  from unified_mm.data.build import build_array_record
  from unified_mm.data.sources.tfds_builder import build_tfds
  from unified_mm.data.sources.webdataset_source import WebDatasetSource
  items = photo_items(size) + BAD
  write_shard(root / "000000.tar", items[:7])
  write_shard(root / "000001.tar", items[7:], start=7)
  wds = str(root / "*.tar")
  write_image_dir(root / "images", items)
  tfds_dir = build_tfds(str(root / "images"), str(root / "tfds"))
  build_array_record(WebDatasetSource(wds), root / "photos.array_record")
  return {"wds": wds, "tfds": tfds_dir, "array_record": str(root / "photos.array_record")}


def read_from(c, source: str, path: str, size: int, **data):
  """A shapes preset `c` reading `source` at `size` px instead of the shapes world."""
  c.unlock()  # the shapes presets have no source keys; experiments/real.py has them all
  # The shapes tokenizer's crops are of its scenes (a source is cropped to `size`).
  crop = {"train_crop": 0} if "train_crop" in c.data else {}
  c.data.update(dict(source=source, path=path, split="train", resolution=size, **crop, **data))
  return c
