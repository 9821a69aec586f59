"""One raw record -> one tokenised training document (the pipeline's map step).

Everything random about a document (its kind, caption dropout) comes from
`np.random.default_rng([seed, stream, index])`, with `index` the record's
position in this host's shuffled stream and `stream` the host's index (so
hosts do not make the same choices at the same positions). The same index
gives the same document whatever the worker count, thread count or restart
point.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from unified_mm.data import sequences
from unified_mm.data.bad_records import BadRecord, counts_vector
from unified_mm.data.config import DOC_KINDS
from unified_mm.data.decode import decode_image
from unified_mm.data.record_codec import edits_of
from unified_mm.data.text_tokenizer import TextTokenizer
from unified_mm.data.vocab import Vocab

CodesFn = Callable[[np.ndarray], np.ndarray]  # uint8 [B, H, W, 3] -> int [B, h, w]


@dataclasses.dataclass
class RecordToDocument:
  """Picklable (Grain spawns workers and sends them the pipeline)."""

  vocab: Vocab
  tokenizer: TextTokenizer
  codes_fn: CodesFn
  seed: int
  seq_len: int
  image_size: int
  resize: bool = True
  doc_ratios: dict[str, float] = dataclasses.field(
      default_factory=lambda: {"caption_to_image": 1.0})
  caption_dropout: float = 0.0
  loss_on_prompt: bool = True
  max_caption_chars: int = 1000
  stream: int = 0

  def __call__(self, index: int, record: dict[str, Any]) -> dict[str, np.ndarray]:
    try:
      example = self._document(index, record)
      reason = None
    except BadRecord as e:
      example, reason = sequences.empty_example(), e.reason
    example["counts"] = counts_vector(reason)
    return example

  def _text(self, text: Any, what: str) -> np.ndarray:
    if isinstance(text, bytes):
      try:
        text = text.decode("utf-8")
      except UnicodeDecodeError as e:
        raise BadRecord("bad_record", f"{what} is not UTF-8") from e
    if not isinstance(text, str) or not text.strip():
      raise BadRecord("empty_caption", f"empty {what}")
    if len(text) > self.max_caption_chars:
      raise BadRecord("long_caption", f"{what} of {len(text)} chars")
    return self.tokenizer.encode(text)

  def _codes(self, parts: list[dict[str, Any]]) -> list[np.ndarray]:
    """Pre-tokenised codes where every part has them, else one codes_fn call."""
    if all(p.get("codes") is not None for p in parts):
      return [np.asarray(p["codes"]) for p in parts]
    if any(p.get("image") is None for p in parts):
      raise BadRecord("unreadable", "record without an image")
    images = np.stack([decode_image(p["image"], self.image_size, self.resize) for p in parts])
    return list(self.codes_fn(images))

  def _kind(self, rng: np.random.Generator, has_edits: bool) -> str:
    kinds = [k for k in DOC_KINDS if has_edits or k != "edit"]
    w = np.array([max(float(self.doc_ratios.get(k, 0.0)), 0.0) for k in kinds])
    if w.sum() <= 0:  # only edit documents asked for, and this record has none
      kinds, w = ["caption_to_image"], np.ones(1)
    return kinds[int(rng.choice(len(kinds), p=w / w.sum()))]

  def _document(self, index: int, record: dict[str, Any]) -> dict[str, np.ndarray]:
    if record.get("error"):
      raise BadRecord(record["error"], "reported by the source")
    rng = np.random.default_rng([self.seed, self.stream, index])
    edits = record.get("edits")
    kind = self._kind(rng, callable(edits) or bool(edits))
    caption = self._text(record.get("caption"), "caption")
    if kind == "edit":
      edits = edits_of(record)
    if kind == "edit" and not edits:  # a lazy chain that found no applicable edit
      kind = "caption_to_image"
    if kind == "edit":
      instructions = [self._text(e.get("instruction"), "instruction") for e in edits]
      codes = self._codes([record, *edits])
      parts = sequences.edit(self.vocab, codes, instructions)
    elif kind == "image_to_caption":
      parts = sequences.image_to_caption(self.vocab, caption, self._codes([record])[0])
    else:
      text = None if rng.random() < self.caption_dropout else caption
      parts = sequences.caption_to_image(self.vocab, text, self._codes([record])[0])
    example = sequences.to_example(self.vocab, parts, self.loss_on_prompt)
    if len(example["tokens"]) > self.seq_len:
      raise BadRecord("too_long", f"{kind} document of {len(example['tokens']) + 1} ids")
    return example
