"""What to tell a user about a prompt before drawing it: never a traceback.

Every prompt is drawn (an empty one unconditionally, unknown words as the text
tokenizer's byte pieces); these notes say what the model will make of it.
"""

from __future__ import annotations

import re

from unified_mm.data.layout import MAX_OBJECTS


def unknown_words(text: str, tokenizer) -> list[str]:
  """Words the text tokenizer has no whole piece for: it spells them in
  fragments or bytes, which training never showed the model."""
  return [w for w in re.findall(r"[^\s,.;:!?]+", text) if len(tokenizer.pieces(w)) > 1]


def prompt_notes(text: str, tokenizer, max_objects: int = MAX_OBJECTS) -> list[str]:
  from unified_mm.data.shapes.captions import parse_caption  # noqa: PLC0415
  if not text.strip():
    return ["empty prompt: drawing an unconditional sample"]
  notes = []
  unknown = unknown_words(text, tokenizer)
  if unknown:
    notes.append(f"words the text tokenizer has never seen: {', '.join(unknown)} "
                 "(spelled in fragments; the model has not learned them)")
  try:
    spec = parse_caption(text)
  except ValueError as e:
    notes.append(f"prompt outside the shapes grammar ({e}): drawn as the model reads it")
    return notes
  if spec.num_objects > max_objects:
    notes.append(f"asks for {spec.num_objects} objects: the plan holds at most {max_objects} "
                 "(and at most 25 fit a 64x64 image); drawing the first ones")
  return notes
