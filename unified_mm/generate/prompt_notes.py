"""What to tell a user about a prompt before drawing it: never a traceback.

Every prompt is drawn (an empty one unconditionally, unknown words as the text
tokenizer's byte pieces, a prompt longer than training ever showed in full);
these notes say what the model will make of it, in lines of bounded length
whatever the prompt's.
"""

from __future__ import annotations

import re

from unified_mm.data.layout import MAX_OBJECTS


# A note quotes at most this many words, or characters of a parser's message.
MAX_LISTED = 8
MAX_QUOTED = 160


def unknown_words(text: str, tokenizer) -> list[str]:
  """Words the text tokenizer has no whole piece for: it spells them in
  fragments or bytes, which training never showed the model. Numbers are
  counts, not words: spelled digit by digit, read as counts by the grammar
  (the preset's captions write a quarter of theirs that way)."""
  words = dict.fromkeys(re.findall(r"[^\s,.;:!?]+", text))  # once each, in order
  return [w for w in words if not w.isdigit() and len(tokenizer.pieces(w)) > 1]


def _listed(words: list[str]) -> str:
  more = len(words) - MAX_LISTED
  return ", ".join(words[:MAX_LISTED]) + (f" and {more} more" if more > 0 else "")


def _clipped(text: str, limit: int = MAX_QUOTED) -> str:
  return text if len(text) <= limit else f"{text[:limit - 1]}… ({len(text):,} characters)"


def prompt_notes(text: str, tokenizer, max_objects: int = MAX_OBJECTS,
                 max_tokens: int = 0, edit: bool = False) -> list[str]:
  """`max_tokens` (> 0): the longest prompt training documents held beside the image.
  `edit`: the text is an edit instruction (its own grammar, not a caption's)."""
  from unified_mm.data.shapes.captions import parse_caption  # noqa: PLC0415
  from unified_mm.data.shapes.edits import parse_edit  # noqa: PLC0415
  if not text.strip():
    return ["empty instruction: the model edits as it sees fit" if edit
            else "empty prompt: drawing an unconditional sample"]
  notes = []
  length = len(tokenizer.encode(text))
  if 0 < max_tokens < length:
    notes.append(f"{length:,} text tokens, more than any training prompt (at most {max_tokens} "
                 "fit beside the image): drawn as the model reads it")
  unknown = unknown_words(text, tokenizer)
  if unknown:
    notes.append(f"words the text tokenizer has never seen: {_listed(unknown)} "
                 "(spelled in fragments; the model has not learned them)")
  if edit:
    try:
      parse_edit(text)
    except ValueError as e:
      notes.append(f"instruction outside the shapes edit grammar ({_clipped(str(e))}): "
                   "applied as the model reads it")
    return notes
  try:
    spec = parse_caption(text)
  except ValueError as e:
    notes.append(f"prompt outside the shapes grammar ({_clipped(str(e))}): "
                 "drawn as the model reads it")
    return notes
  if spec.num_objects > max_objects:
    notes.append(f"asks for {spec.num_objects} objects: the plan holds at most {max_objects} "
                 "(and at most 25 fit a 64x64 image); drawing the first ones")
  return notes
