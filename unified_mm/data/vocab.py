"""The one vocabulary of the unified transformer.

    [0, text_size)                         SentencePiece text ids
    [text_size, text_size + image_codes)   image-code ids (FSQ codes + offset)
    then the special tokens, then padding up to a multiple of `pad_to`

Text ids come first so a SentencePiece model can be swapped without moving
the image range; specials last so their ids never collide with either.
"""

from __future__ import annotations

import dataclasses

import numpy as np

SPECIALS = ("pad", "bos", "eos", "boi", "eoi", "sep")

# Modality ids carried next to every token, for per-modality loss/metrics.
TEXT, IMAGE, SPECIAL = 0, 1, 2


@dataclasses.dataclass(frozen=True)
class Vocab:
  text_size: int
  image_codes: int
  pad_to: int = 128

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

  @property
  def size(self) -> int:
    n = self.special_offset + len(SPECIALS)
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
    return np.where(ids < self.text_size, TEXT,
                    np.where(ids < self.special_offset, IMAGE, SPECIAL)).astype(np.int32)
