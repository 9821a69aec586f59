"""Raw image data (encoded bytes or a pixel array) -> validated uint8 [S, S, 3]."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from unified_mm.data.bad_records import BadRecord

# Larger images are certainly not training data for a 64-1024 px model and
# would stall a worker; PIL's own bomb check warns at ~89 Mpx and raises at 2x.
MAX_PIXELS = 64_000_000
# A PNG's last chunk (IEND, empty, so its CRC is fixed). PIL stops reading once
# the pixel rows are in, so a download cut after them would otherwise pass.
_PNG_END = b"IEND\xaeB`\x82"


def _open(data: bytes) -> Image.Image:
  try:
    with warnings.catch_warnings():
      warnings.simplefilter("error", Image.DecompressionBombWarning)
      img = Image.open(io.BytesIO(data))
      if img.width * img.height > MAX_PIXELS:
        raise BadRecord("bad_image", f"{img.width}x{img.height} is too large")
      img.load()  # PIL decodes lazily: force it, so truncation shows up here
      if img.format == "PNG" and data.rfind(_PNG_END) < 0:  # rfind: trailing junk is common
        raise BadRecord("bad_image", "PNG without its IEND chunk: truncated")
  except BadRecord:
    raise
  except Exception as e:  # PIL raises many types for corrupt input
    raise BadRecord("bad_image", f"{type(e).__name__}: {e}") from e
  if img.mode != "RGB":
    img = img.convert("RGB")  # grey, palette, RGBA, CMYK: all become RGB
  return img


def _resize(img: Image.Image, size: int) -> Image.Image:
  """Centre crop to a square, then resize (BICUBIC down, NEAREST for exact multiples up)."""
  w, h = img.size
  s = min(w, h)
  if (w, h) != (s, s):
    left, top = (w - s) // 2, (h - s) // 2
    img = img.crop((left, top, left + s, top + s))
  if s == size:
    return img
  resample = Image.NEAREST if size % s == 0 else Image.BICUBIC
  return img.resize((size, size), resample)


def decode_image(data, image_size: int, resize: bool = True) -> np.ndarray:
  """Bytes (PNG/JPEG/...) or a pixel array -> uint8 [image_size, image_size, 3].

  Raises BadRecord("bad_image") for data that is no decodable image and
  BadRecord("wrong_shape") for arrays that are not [H, W, 3] uint8, or for any
  image of another size when `resize` is off.
  """
  if isinstance(data, np.ndarray):
    if data.ndim != 3 or data.shape[-1] != 3 or data.dtype != np.uint8 or 0 in data.shape:
      raise BadRecord("wrong_shape", f"{data.dtype}{list(data.shape)}")
    if data.shape[:2] == (image_size, image_size):
      return data
    if not resize:
      raise BadRecord("wrong_shape", f"{data.shape} is not {image_size}x{image_size}")
    img = Image.fromarray(data)
  elif isinstance(data, (bytes, bytearray, memoryview)):
    img = _open(bytes(data))
    if img.size != (image_size, image_size) and not resize:
      raise BadRecord("wrong_shape", f"{img.size} is not {image_size}x{image_size}")
  else:
    raise BadRecord("bad_image", f"image of type {type(data).__name__}")
  return np.asarray(_resize(img, image_size), np.uint8)


def encode_png(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(np.asarray(image, np.uint8)).save(buf, format="PNG")
  return buf.getvalue()
