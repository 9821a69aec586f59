"""Small data sets the data-pipeline tests write: images, captions, the bad cases.

(A module with its own name rather than conftest.py: `from conftest import`
resolves to whichever conftest.py pytest loaded last in a whole-suite run.)
"""

from __future__ import annotations

import io
import pathlib
import tarfile

import numpy as np
from PIL import Image

from unified_mm.data.config import default_data_config

SIZE = 16  # small images keep the sources' tests fast; the stand-in grid is 4x4


def small_config(**overrides):
  """Finite, one epoch, 16x16 images, no edits: for file-backed sources."""
  c = default_data_config(image_size=SIZE, seq_len=64, num_epochs=1, resize=False,
                          doc_ratios=dict(caption_to_image=0.5, image_to_caption=0.5, edit=0.0),
                          caption_dropout=0.0, max_caption_chars=200)
  c.update(overrides)
  return c


def image_of(i: int, size: int = SIZE) -> np.ndarray:
  """A distinct image per i: a coloured block on a grey background."""
  rng = np.random.default_rng(i)
  img = np.full((size, size, 3), 128, np.uint8)
  x, y = rng.integers(0, size // 2, 2)
  img[y:y + size // 2, x:x + size // 2] = rng.integers(0, 256, 3)
  return img


def png_bytes(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="PNG")
  return buf.getvalue()


def good_pairs(n: int) -> list[tuple[np.ndarray, str]]:
  return [(image_of(i), f"a red circle number {i}") for i in range(n)]


# The bad cases every file-backed source must count and skip: (name, image bytes, caption).
BAD_CASES = {
    "bad_image": [(png_bytes(image_of(100))[:40], "a truncated png"),
                  (b"this is not an image at all", "a text file")],
    "empty_caption": [(png_bytes(image_of(101)), "   ")],
    "long_caption": [(png_bytes(image_of(102)), "x" * 500)],
    "wrong_shape": [(png_bytes(image_of(103, size=SIZE * 2 + 1)), "an image of the wrong size")],
}


def bad_count(reason: str) -> int:
  return len(BAD_CASES[reason])


def write_files(directory: pathlib.Path, items: list[tuple[bytes, str]]) -> None:
  directory.mkdir(parents=True, exist_ok=True)
  for i, (image, caption) in enumerate(items):
    (directory / f"{i:06d}.png").write_bytes(image)
    (directory / f"{i:06d}.txt").write_text(caption, encoding="utf-8")


def write_tar(path: pathlib.Path, items: list[tuple[bytes, str]], start: int = 0) -> None:
  with tarfile.open(path, "w") as tar:
    for i, (image, caption) in enumerate(items, start):
      for name, data in ((f"{i:06d}.png", image), (f"{i:06d}.txt", caption.encode()),
                         (f"{i:06d}.json", b'{"i": %d}' % i)):
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def all_bad_items() -> list[tuple[bytes, str]]:
  return [item for items in BAD_CASES.values() for item in items]
