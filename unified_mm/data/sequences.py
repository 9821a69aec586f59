"""Interleaved documents in the one vocabulary, and their training targets.

Layouts (text = SentencePiece ids, codes = image-code ids):

  caption_to_image   BOS text BOI codes EOI EOS
  planned            BOS text BOL layout EOL BOI codes EOI EOS   (layout.py: the plan)
  caption_to_layout  BOS text BOL layout EOL EOS                 (the plan alone)
  unconditional      BOS BOI codes EOI EOS          (caption dropped, for CFG)
  image_to_caption   BOS BOI codes EOI text EOS
  edit (n turns)     BOS BOI codes0 EOI text1 SEP BOI codes1 EOI ... text_n SEP BOI codes_n EOI EOS

A document of n ids trains on n - 1 next-token predictions: `tokens` are
ids[:-1], `targets` ids[1:]. `modality` is the modality of the *target* (the
token being predicted), so losses split by modality. The "prompt" of a
document is what it is conditioned on (the caption, the source image, the
first image and each instruction); `loss_on_prompt=False` leaves it out of the
loss, so only the answer is learned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unified_mm.data.vocab import Vocab

Part = tuple[np.ndarray, bool]  # (ids, is_answer)


def _ids(*values: int) -> np.ndarray:
  return np.asarray(values, np.int32)


def _image(vocab: Vocab, codes: np.ndarray, answer: bool) -> list[Part]:
  flat = vocab.codes_to_ids(np.asarray(codes).reshape(-1))
  return [(_ids(vocab.boi), answer), (flat, answer), (_ids(vocab.eoi), answer)]


def caption_to_image(vocab: Vocab, text: np.ndarray | None, codes: np.ndarray,
                     layout: np.ndarray | None = None) -> list[Part]:
  """`text=None` gives the unconditional document; `layout` (BOL ... EOL ids,
  layout.layout_ids) the planned one, where the plan is part of the answer."""
  prompt = [] if text is None else [(np.asarray(text, np.int32), False)]
  plan = [] if layout is None else [(np.asarray(layout, np.int32), True)]
  return [(_ids(vocab.bos), False), *prompt, *plan, *_image(vocab, codes, True),
          (_ids(vocab.eos), True)]


def caption_to_layout(vocab: Vocab, text: np.ndarray, layout: np.ndarray) -> list[Part]:
  """The planner's lesson alone: the plan of a caption, no image (a fifth of the ids)."""
  return [(_ids(vocab.bos), False), (np.asarray(text, np.int32), False),
          (np.asarray(layout, np.int32), True), (_ids(vocab.eos), True)]


def image_to_caption(vocab: Vocab, text: np.ndarray, codes: np.ndarray) -> list[Part]:
  return [(_ids(vocab.bos), False), *_image(vocab, codes, False),
          (np.asarray(text, np.int32), True), (_ids(vocab.eos), True)]


def edit(vocab: Vocab, codes: Sequence[np.ndarray], instructions: Sequence[np.ndarray]
         ) -> list[Part]:
  """codes[0] is the start image; codes[t] the result of instructions[t - 1]."""
  if len(codes) != len(instructions) + 1:
    raise ValueError(f"{len(codes)} images for {len(instructions)} instructions")
  parts = [(_ids(vocab.bos), False), *_image(vocab, codes[0], False)]
  for image_codes, text in zip(codes[1:], instructions):
    parts += [(np.asarray(text, np.int32), False), (_ids(vocab.sep), False),
              *_image(vocab, image_codes, True)]
  return parts + [(_ids(vocab.eos), True)]


def to_example(vocab: Vocab, parts: list[Part], loss_on_prompt: bool = True
               ) -> dict[str, np.ndarray]:
  """Parts -> int32 `tokens`, `targets`, `loss_mask`, `modality`, each [n - 1]."""
  ids = np.concatenate([p for p, _ in parts])
  answer = np.concatenate([np.full(len(p), a, bool) for p, a in parts])
  targets = ids[1:]
  mask = np.ones(len(targets), bool) if loss_on_prompt else answer[1:]
  return {"tokens": ids[:-1], "targets": targets,
          "loss_mask": mask.astype(np.int32), "modality": vocab.modality(targets)}


def empty_example() -> dict[str, np.ndarray]:
  """A zero-length document: carries a skip count through packing, adds no tokens."""
  z = np.zeros((0,), np.int32)
  return {"tokens": z, "targets": z, "loss_mask": z, "modality": z}


def parse(vocab: Vocab, ids: np.ndarray) -> list[tuple[str, np.ndarray]]:
  """A document's ids -> [("text", text ids) | ("image", codes [n])], in order.

  The inverse of the layouts above (specials other than BOI/EOI dropped), for
  reading generated documents and for previews. An image left open at the
  end (no EOI) is returned as far as it goes.
  """
  out: list[tuple[str, np.ndarray]] = []
  ids = np.asarray(ids)
  i = 0
  while i < len(ids):
    if ids[i] == vocab.boi:
      j = i + 1
      while j < len(ids) and ids[j] != vocab.eoi:
        j += 1
      out.append(("image", vocab.ids_to_codes(ids[i + 1:j])))
      i = j + 1
    elif ids[i] < vocab.text_size:
      j = i
      while j < len(ids) and ids[j] < vocab.text_size:
        j += 1
      out.append(("text", ids[i:j]))
      i = j
    else:
      i += 1
  return out
