"""The one vocabulary of the unified transformer.

    [0, text_size)                         SentencePiece text ids
    [text_size, text_size + image_codes)   image-code ids (FSQ codes + offset)
    then the special tokens, then `layout_bins` coordinate tokens (a layout's
    box corners, Pix2Seq-style bins), then padding up to a multiple of `pad_to`

Text ids come first so a SentencePiece model can be swapped without moving
the image range; specials last so their ids never collide with either.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# bol/eol open and close a layout (the written plan); `box` ends an object's
# label and precedes its four coordinates (see layout.py).
SPECIALS = ("pad", "bos", "eos", "boi", "eoi", "sep", "bol", "eol", "box")

# Modality ids carried next to every token, for per-modality loss/metrics.
TEXT, IMAGE, SPECIAL, LAYOUT = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class Vocab:
  text_size: int
  image_codes: int
  pad_to: int = 128
  layout_bins: int = 0

  @property
  def image_offset(self) -> int:
    return self.text_size

  @property
  def special_offset(self) -> int:
    return self.text_size + self.image_codes

  def special(self, name: str) -> int:
    return self.special_offset + SPECIALS.index(name)

  pad = property(lambda self: self.special("pad"))
  bos = property(lambda self: self.special("bos"))
  eos = property(lambda self: self.special("eos"))
  boi = property(lambda self: self.special("boi"))
  eoi = property(lambda self: self.special("eoi"))
  sep = property(lambda self: self.special("sep"))
  bol = property(lambda self: self.special("bol"))
  eol = property(lambda self: self.special("eol"))
  box = property(lambda self: self.special("box"))

  @property
  def coord_offset(self) -> int:
    return self.special_offset + len(SPECIALS)

  @property
  def coord_range(self) -> tuple[int, int]:
    """[start, stop) of coordinate ids (empty when layout_bins is 0)."""
    return self.coord_offset, self.coord_offset + self.layout_bins

  @property
  def size(self) -> int:
    n = self.coord_offset + self.layout_bins
    return -(-n // self.pad_to) * self.pad_to

  @property
  def image_range(self) -> tuple[int, int]:
    """[start, stop) of image-code ids, for logit masks inside BOI...EOI."""
    return self.image_offset, self.special_offset

  def codes_to_ids(self, codes: np.ndarray) -> np.ndarray:
    return np.asarray(codes, np.int32) + self.image_offset

  def ids_to_codes(self, ids: np.ndarray) -> np.ndarray:
    return np.asarray(ids, np.int32) - self.image_offset

  def modality(self, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    return np.select([ids < self.text_size, ids < self.special_offset, ids < self.coord_offset],
                     [TEXT, IMAGE, SPECIAL], LAYOUT).astype(np.int32)
