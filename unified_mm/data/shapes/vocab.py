"""The closed vocabulary of the shapes world: colours, kinds, sizes, numbers.

Everything else (sampler, renderer, captions, analyzer) reads these tables, so
adding a colour or a kind here is the whole change (plus a mask in masks.py).
"""

from __future__ import annotations

import numpy as np

# Corners of the RGB cube plus two mid-edge points. The closest pairs
# (orange-red, orange-yellow, purple-blue, purple-magenta) are still 127 apart,
# so a noisy pixel snaps to the right colour with a threshold of ~60.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (255, 0, 0),
    "orange": (255, 128, 0),
    "yellow": (255, 255, 0),
    "green": (0, 255, 0),
    "cyan": (0, 255, 255),
    "blue": (0, 0, 255),
    "purple": (128, 0, 255),
    "magenta": (255, 0, 255),
    "white": (255, 255, 255),
    "black": (0, 0, 0),
}
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)

# Mid-grey is >= 180 away from every palette colour, farther than any two
# palette colours are from each other.
BACKGROUND: tuple[int, int, int] = (128, 128, 128)

# Chosen so that their silhouettes differ even at 10 px (see analyzer.py);
# near-circles such as hexagons and octagons were left out on purpose.
KINDS: tuple[str, ...] = (
    "circle", "square", "triangle", "diamond", "star", "cross", "heart", "semicircle",
)
PLURALS: dict[str, str] = {k: ("crosses" if k == "cross" else k + "s") for k in KINDS}

# Object width as a fraction of the image side. At 64x64 this is 10/15/20 px;
# 10 px is the smallest size at which the analyzer tells all kinds apart
# reliably, so resolutions below 64 render shapes the analyzer may confuse.
SIZES: dict[str, float] = {"small": 0.16, "medium": 0.23, "large": 0.32}
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)
# Below 5 px the pointed kinds lose their tips entirely and all look alike.
MIN_SIZE_PX = 5

NUMBER_WORDS: tuple[str, ...] = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
    "seventeen", "eighteen", "nineteen", "twenty",
)
MAX_COUNT = len(NUMBER_WORDS) - 1


def size_px(size: str, resolution: int) -> int:
  """Nominal object width in pixels for a size name at a resolution."""
  return max(MIN_SIZE_PX, int(round(SIZES[size] * resolution)))


def palette_array() -> np.ndarray:
  """[P + 1, 3] int32: the palette in COLOUR_NAMES order, background last."""
  return np.array([COLOURS[c] for c in COLOUR_NAMES] + [BACKGROUND], dtype=np.int32)
