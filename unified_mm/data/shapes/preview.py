"""A PNG contact sheet of scenes (or any images) with their captions below."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import Scene

_PAD = 6
_LINE_HEIGHT = 13


def _font() -> ImageFont.ImageFont:
  try:
    return ImageFont.load_default(size=11)
  except TypeError:  # Pillow without FreeType: the fixed bitmap font
    return ImageFont.load_default()


def _wrap(text: str, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont, width: int) -> list[str]:
  lines, line = [], ""
  for word in text.split():
    trial = f"{line} {word}".strip()
    if line and draw.textlength(trial, font=font) > width:
      lines.append(line)
      line = word
    else:
      line = trial
  return lines + ([line] if line else [])


def _to_image(item: Scene | np.ndarray, tile: int) -> Image.Image:
  pixels = render(item) if isinstance(item, Scene) else np.asarray(item, dtype=np.uint8)
  # Nearest neighbour keeps the flat colours (and the pixel grid) visible.
  return Image.fromarray(pixels[..., :3]).resize((tile, tile), Image.NEAREST)


def preview_grid(items: Sequence[Scene | np.ndarray], captions: Sequence[str] | None,
                 path: str | os.PathLike, *, cols: int = 4, tile: int = 192,
                 max_lines: int = 6) -> Image.Image:
  """Writes a grid of images with wrapped captions under each; returns it."""
  captions = list(captions) if captions is not None else [""] * len(items)
  if len(captions) != len(items):
    raise ValueError(f"{len(items)} images but {len(captions)} captions")
  font = _font()
  scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
  wrapped = [_wrap(c, scratch, font, tile)[:max_lines] for c in captions]
  text_h = _LINE_HEIGHT * max([len(w) for w in wrapped] + [0])
  rows = max(1, -(-len(items) // cols))
  cell_w, cell_h = tile + 2 * _PAD, tile + text_h + 2 * _PAD
  sheet = Image.new("RGB", (cols * cell_w, rows * cell_h), "white")
  draw = ImageDraw.Draw(sheet)
  for i, (item, lines) in enumerate(zip(items, wrapped)):
    x, y = (i % cols) * cell_w + _PAD, (i // cols) * cell_h + _PAD
    sheet.paste(_to_image(item, tile), (x, y))
    for j, line in enumerate(lines):
      draw.text((x, y + tile + 2 + j * _LINE_HEIGHT), line, fill="black", font=font)
  sheet.save(os.fspath(path))
  return sheet
