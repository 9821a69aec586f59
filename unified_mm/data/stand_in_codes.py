"""A stand-in image tokenizer for the data pipeline until the real one exists.

Deterministic and parameter-free: average-pool the image to a `grid x grid`
map and quantise each channel to `levels` values, so a code is one of
`levels**3` colours. It has the real tokenizer's interface,
`codes_fn(images uint8 [B, H, W, 3]) -> int32 codes [B, h, w]`, and is only
good enough to exercise the pipeline and tiny models; the trained FSQ
tokenizer replaces it through the same callable.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class StandInCodes:
  grid: int = 8
  levels: int = 4

  @property
  def num_codes(self) -> int:
    return self.levels ** 3

  @property
  def fsq_levels(self) -> tuple[int, ...]:
    """The code as mixed-radix digits, as an FSQ code is (one per colour channel)."""
    return (self.levels,) * 3

  def __call__(self, images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    b, h, w, c = images.shape
    if h % self.grid or w % self.grid or c != 3:
      raise ValueError(f"images {images.shape} do not pool to a {self.grid}x{self.grid} grid")
    pooled = images.reshape(b, self.grid, h // self.grid, self.grid, w // self.grid, 3)
    pooled = pooled.mean(axis=(2, 4), dtype=np.float32)  # [B, h, w, 3]
    q = np.minimum((pooled * self.levels / 256.0).astype(np.int32), self.levels - 1)
    return (q[..., 0] * self.levels + q[..., 1]) * self.levels + q[..., 2]  # [B, h, w]

  def to_image(self, codes: np.ndarray, size: int) -> np.ndarray:
    """[B, h, w] codes -> [B, size, size, 3] uint8 blocks of the codes' colours."""
    codes = np.asarray(codes, np.int32)
    q = np.stack([codes // self.levels ** 2, codes // self.levels % self.levels,
                  codes % self.levels], axis=-1)
    rgb = ((q + 0.5) * (256.0 / self.levels)).astype(np.uint8)  # [B, h, w, 3]
    rep = size // codes.shape[-1]
    return rgb.repeat(rep, axis=1).repeat(rep, axis=2)
