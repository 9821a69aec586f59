"""Image codes for a whole batch in one `codes_fn` call.

A document whose images still need codes is built with placeholder codes (the
length of a document depends only on the code grid, not on the codes), its
decoded images travel with it through packing, and once a batch is formed all
of its images are encoded together: one call of the image tokenizer per batch
instead of one per document. Two int32 features locate the placeholders:
`code_image` (which of the row's / batch's images, -1 elsewhere) and
`code_pos` (the position within that image's flattened codes).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from unified_mm.data.documents import CodesFn

CODE_KEYS = ("code_image", "code_pos")


def stack_rows(rows: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
  """Grain `batch_fn`: stacks rows; concatenates their images, renumbering `code_image`."""
  batch = {k: np.stack([r[k] for r in rows]) for k in rows[0] if k != "images"}
  counts = np.array([len(r["images"]) for r in rows])
  offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])[:, None]  # [B, 1]
  ci = batch["code_image"]
  batch["code_image"] = np.where(ci >= 0, ci + offsets, -1).astype(np.int32)
  batch["images"] = np.concatenate([r["images"] for r in rows])
  return batch


@dataclasses.dataclass
class FillCodes:
  """Grain map: encodes the batch's images and writes their ids into tokens and targets."""

  codes_fn: CodesFn
  image_offset: int
  # The image count varies from batch to batch; a jitted tokenizer would
  # compile once per count. Padding to a multiple keeps that to a few shapes.
  pad_to: int = 16

  def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    batch = dict(batch)
    images = batch.pop("images")
    ci, pos = batch.pop("code_image"), batch.pop("code_pos")
    n = len(images)
    if not n:
      return batch
    padded = -(-n // self.pad_to) * self.pad_to
    if padded > n:
      images = np.concatenate([images, np.zeros((padded - n, *images.shape[1:]), images.dtype)])
    codes = np.asarray(self.codes_fn(images))[:n].reshape(n, -1)  # [M, h*w]
    pending = ci >= 0
    tokens = batch["tokens"].copy()
    tokens[pending] = codes[ci[pending], pos[pending]] + self.image_offset
    # The target after a pending code is the next token of the same document
    # (a document never ends on a code: EOI and EOS follow), so targets copy it.
    targets = batch["targets"].copy()
    targets[:, :-1] = np.where(pending[:, 1:], tokens[:, 1:], targets[:, :-1])
    batch["tokens"], batch["targets"] = tokens, targets
    return batch
