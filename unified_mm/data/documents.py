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

from unified_mm.data import layout, sequences
from unified_mm.data.bad_records import BadRecord, counts_vector
from unified_mm.data.config import DOC_KINDS
from unified_mm.data.decode import decode_image
from unified_mm.data.record_codec import edits_of
from unified_mm.data.text_tokenizer import TextTokenizer
from unified_mm.data.vocab import Vocab

CodesFn = Callable[[np.ndarray], np.ndarray]  # uint8 [B, H, W, 3] -> int [B, h, w]


def checked_text(text: Any, what: str, max_chars: int) -> str:
  """A caption or instruction as str, or BadRecord naming why it cannot be one
  (shared by the transformer's documents and the image stages' records)."""
  if text is None:  # the key is missing: a part of the record is, not just its words
    raise BadRecord("unreadable", f"no {what}")
  if isinstance(text, bytes):
    try:
      text = text.decode("utf-8")
    except UnicodeDecodeError as e:
      raise BadRecord("bad_record", f"{what} is not UTF-8") from e
  if not isinstance(text, str):
    raise BadRecord("bad_record", f"{what} of type {type(text).__name__}")
  if not text.strip():
    raise BadRecord("empty_caption", f"empty {what}")
  if len(text) > max_chars:
    raise BadRecord("long_caption", f"{what} of {len(text)} chars")
  try:
    text.encode("utf-8")  # lone surrogates (bytes decoded with surrogateescape upstream)
  except UnicodeEncodeError as e:  # would raise a RuntimeError inside SentencePiece
    raise BadRecord("bad_record", f"{what} is not UTF-8") from e
  return text


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
  code_grid: tuple[int, ...] | None = None  # None: probed with one codes_fn call when needed
  # A caption->image document of a record with "boxes" is planned (writes the
  # layout before the codes) with probability layout_prob; 0 bins: never.
  layout_bins: int = 0
  layout_prob: float = 0.0
  # A plain caption->image document (no plan) reads the record's full
  # description instead of a caption that may name only part of the image,
  # unless the record says its caption is exact: with no plan to say what
  # else is there, a partial caption teaches the drawer to add objects nobody asked for.
  plain_description: bool = False

  def __call__(self, index: int, record: dict[str, Any]) -> dict[str, np.ndarray]:
    try:
      example = self._document(index, record)
      reason = None
    except BadRecord as e:
      example, reason = sequences.empty_example(), e.reason
      example.update(code_image=np.zeros((0,), np.int32), code_pos=np.zeros((0,), np.int32),
                     images=self._no_images())
    example["counts"] = counts_vector(reason)
    return example

  def _no_images(self) -> np.ndarray:
    return np.zeros((0, self.image_size, self.image_size, 3), np.uint8)

  def _grid(self) -> tuple[int, ...]:
    if self.code_grid is None:
      probe = np.zeros((1, self.image_size, self.image_size, 3), np.uint8)
      self.code_grid = tuple(np.asarray(self.codes_fn(probe)).shape[1:])
    return self.code_grid

  def _code_slots(self, tokens: np.ndarray, num_images: int) -> dict[str, np.ndarray]:
    """Where the placeholder codes of the i-th image sit (see batch_codes.py)."""
    image = np.full(len(tokens), -1, np.int32)
    pos = np.zeros(len(tokens), np.int32)
    if num_images:
      hw = int(np.prod(self._grid()))
      for i, boi in enumerate(np.flatnonzero(tokens == self.vocab.boi)):
        image[boi + 1:boi + 1 + hw] = i
        pos[boi + 1:boi + 1 + hw] = np.arange(hw)
    return {"code_image": image, "code_pos": pos}

  def _text(self, text: Any, what: str) -> np.ndarray:
    return self.tokenizer.encode(checked_text(text, what, self.max_caption_chars))

  def _codes(self, parts: list[dict[str, Any]]) -> tuple[list[np.ndarray], np.ndarray]:
    """Codes for every part, and the decoded images still to be encoded.

    Pre-tokenised codes are used as they are (no images left to encode).
    Otherwise the images are decoded and validated here, and get placeholder
    codes that the batch's one `codes_fn` call replaces (batch_codes.py).
    """
    if all(p.get("codes") is not None for p in parts):
      return [np.asarray(p["codes"]) for p in parts], self._no_images()
    if any(p.get("image") is None for p in parts):
      raise BadRecord("unreadable", "record without an image")
    images = np.stack([decode_image(p["image"], self.image_size, self.resize) for p in parts])
    return [np.zeros(self._grid(), np.int32)] * len(parts), images

  def _has_layout(self, record: dict[str, Any]) -> bool:
    return bool(self.layout_bins and record.get("boxes"))

  def _layout(self, rng: np.random.Generator, record: dict[str, Any]) -> np.ndarray | None:
    """The record's plan ids (BOL ... EOL) with probability layout_prob, else None."""
    # No draw at all without layouts, so layout-free configs keep their documents.
    if not self._has_layout(record) or rng.random() >= self.layout_prob:
      return None
    return self._plan_ids(record)

  def _plan_ids(self, record: dict[str, Any]) -> np.ndarray:
    try:
      objects = layout.objects_from_boxes(record["boxes"], self.layout_bins)
      return layout.layout_ids(self.vocab, self.tokenizer, objects)
    except (KeyError, TypeError, ValueError) as e:
      raise BadRecord("bad_record", f"boxes: {e}") from e

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
      codes, images = self._codes([record, *edits])
      parts = sequences.edit(self.vocab, codes, instructions)
    elif kind == "caption_to_layout" and self._has_layout(record):
      codes, images = [], self._no_images()
      parts = sequences.caption_to_layout(self.vocab, caption, self._plan_ids(record))
    elif kind == "image_to_caption":
      codes, images = self._codes([record])
      # A captioner describes the whole image: the source's full description
      # when it has one (shapes), else its caption.
      text = self._text(record["description"], "caption") if record.get("description") else caption
      parts = sequences.image_to_caption(self.vocab, text, codes[0])
    else:
      text = None if rng.random() < self.caption_dropout else caption
      layout = self._layout(rng, record)
      if (text is not None and layout is None and self.plain_description
          and record.get("description") and not record.get("exact_caption")):
        text = self._text(record["description"], "caption")
      codes, images = self._codes([record])
      parts = sequences.caption_to_image(self.vocab, text, codes[0], layout)
    example = sequences.to_example(self.vocab, parts, self.loss_on_prompt)
    if len(example["tokens"]) > self.seq_len:
      raise BadRecord("too_long", f"{kind} document of {len(example['tokens']) + 1} ids")
    example.update(self._code_slots(example["tokens"], len(images)), images=images)
    return example
