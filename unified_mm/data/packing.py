"""Documents of varying length -> fixed rows of `seq_len` tokens.

First-fit packing (Grain's `FirstFitPackIterDataset`): a document is never
split, so no token can attend across documents once the model masks by
`segment_ids`; positions restart at 0 in every document (RoPE sees each
document as if alone). Rows are padded with PAD tokens, loss_mask 0, segment 0.
Zero-length documents (skipped records, see bad_records.py) take no tokens
but still deliver their `counts` with the row. Images waiting for codes ride
along as a per-document meta feature (see batch_codes.py).
"""

from __future__ import annotations

import grain
import numpy as np

from unified_mm.data.batch_codes import CODE_KEYS
from unified_mm.data.vocab import SPECIAL, Vocab

SEQUENCE_KEYS = ("tokens", "targets", "loss_mask", "modality")
BATCH_KEYS = (*SEQUENCE_KEYS, "positions", "segment_ids")
_PACKED_KEYS = (*SEQUENCE_KEYS, *CODE_KEYS)


def pack_documents(ds: grain.IterDataset, *, vocab: Vocab, seq_len: int, num_bins: int,
                   seed: int) -> grain.IterDataset:
  packed = grain.experimental.FirstFitPackIterDataset(
      ds,
      length_struct={k: seq_len for k in _PACKED_KEYS},
      num_packing_bins=num_bins,
      seed=seed,
      shuffle_bins=True,
      meta_features=("counts", "images"),
      padding_struct={"tokens": vocab.pad, "targets": vocab.pad, "loss_mask": 0,
                      "modality": SPECIAL, "code_image": -1, "code_pos": 0},
  )
  return packed.map(finalize_row)


def finalize_row(row: dict) -> dict[str, np.ndarray]:
  """Grain's packed row -> the batch format; segment ids renumbered 1..k in order."""
  seg = row["tokens_segment_ids"]
  # Zero-length documents leave gaps in Grain's numbering; close them so a
  # row with k documents uses exactly the ids 1..k.
  _, dense = np.unique(seg, return_inverse=True)
  dense = dense.astype(np.int32) + (0 if (seg == 0).any() else 1)
  out = {k: np.asarray(row[k], np.int32) for k in _PACKED_KEYS}
  out["positions"] = row["tokens_positions"].astype(np.int32)
  out["segment_ids"] = dense.reshape(seg.shape)
  out["counts"] = np.sum(row["counts"], axis=0, dtype=np.int32)
  # Meta lists follow Grain's segment numbering (document g is entry g - 1):
  # make each document's image indices row-wide.
  per_doc = [len(im) for im in row["images"]]
  first = np.concatenate([[0], np.cumsum(per_doc)[:-1]]).astype(np.int32)
  ci = out["code_image"]
  out["code_image"] = np.where(ci >= 0, ci + first[np.maximum(seg - 1, 0)], -1).astype(np.int32)
  out["images"] = np.concatenate(row["images"])
  return out


def unpack_row(row: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
  """The documents of one packed row, in order (for tests and inspection)."""
  seg = row["segment_ids"]
  return [{k: row[k][seg == s] for k in SEQUENCE_KEYS} for s in range(1, int(seg.max()) + 1)]
