"""The built-in shapes world as an endless, random-access Grain source.

Record `i` of seed `s` is a pure function of (s, i): the scene is
`scene_for_index(s, i)`, the caption draws from `default_rng([s, i, 1])`, the
edit chain from `default_rng([s, i, 2])`, the description from `default_rng([s, i, 3])`.
The caption is any true statement about the scene (GenEval-style prompts to
draw from); the description is the full-scene caption, what image->caption
documents teach the transformer to write.

With `prompt_prob` > 0 that share of records is made prompt-first instead
(`default_rng([s, i, 4])`): a prompt of a random GenEval category
(`prompts.sample_prompt`) and a scene of exactly what it asks. Random scenes
almost never hold three objects of one kind and colour, so without these a
planner never reads "three red stars"; and a prompt that names every object
teaches it to plan what was asked rather than to invent neighbours.
`compound_prob` of the prompt-first records ask for a count, a size and a
relation in one prompt (`prompts.sample_compound`: "two red circles left of a
blue square"), which the categories each ask alone.
`digit_prob` of the captions write their counts as digits ("3 red stars") and
`stop_prob` end in a full stop (`default_rng([s, i, 5])`), as people type them;
descriptions, what a captioner learns to write, keep the world's own form.
`prompt_size_weights` (small, medium, large) draws those scenes' sizes: a
prompt that names no size is then planned at the sizes a drawer renders and
an analyzer reads most reliably.
`cell_align` (px) puts every object's box corner on a lattice of that stride,
the image tokenizer's code cell: an object of one kind, colour and size then
always meets the same codes (scene.place_one).

Every record is a function of (seed, index) alone: any worker can produce
any record, and a resumed run regenerates exactly the records it would have
read.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from unified_mm.data.record_codec import edits_of
from unified_mm.data.shapes import captions, vocab
from unified_mm.data.shapes.grounding import scene_boxes
from unified_mm.data.shapes.prompts import sample_compound, sample_prompt
from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import scene_for_index
from unified_mm.data.shapes.spec import CATEGORIES

# "Endless": Grain needs a length; 2**40 records at 10k/s last three years.
ENDLESS = 2 ** 40


class ShapesSource:
  """`__getitem__(i)` -> {"image": uint8 [R, R, 3], "caption", "exact_caption", "boxes",
  "description", "meta", "edits"}.

  "exact_caption" is True for a prompt-first record: its caption names everything drawn.

  "boxes" is the scene's grounded layout (grounding.py), caption-mentioned objects first.

  "edits" is a zero-argument callable (see `record_codec.edits_of`).
  """

  def __init__(self, seed: int = 0, resolution: int = 64, max_objects: int = 4,
               min_objects: int = 1, edit_turns: int = 0, length: int = ENDLESS,
               prompt_prob: float = 0.0, prompt_size_weights=(1.0, 1.0, 1.0),
               compound_prob: float = 0.0, digit_prob: float = 0.0, stop_prob: float = 0.0,
               cell_align: int = 0):
    self.seed = seed
    self.cell_align = int(cell_align)
    self.digit_prob, self.stop_prob = float(digit_prob), float(stop_prob)
    self.prompt_prob = float(prompt_prob)
    self.compound_prob = float(compound_prob)
    w = np.asarray(prompt_size_weights, np.float64)
    # Uniform keeps the exact records of runs made before the weights existed.
    self.prompt_size_probs = None if np.all(w == w[0]) else tuple(w / w.sum())
    self.resolution = resolution
    self.min_objects = min_objects
    self.max_objects = max_objects
    self.edit_turns = edit_turns
    self.length = length

  def __len__(self) -> int:
    return self.length

  def __getitem__(self, index: int) -> dict[str, Any]:
    index = int(index)
    if not 0 <= index < self.length:
      raise IndexError(index)
    text, spec, scene = self._prompt_first(index) if self.prompt_prob else (None, None, None)
    exact = scene is not None  # a prompt-first scene holds exactly what its prompt names
    if scene is None:
      scene = scene_for_index(self.seed, index, resolution=self.resolution,
                              min_objects=self.min_objects, max_objects=self.max_objects,
                              align=self.cell_align)
      text, spec = captions.describe(scene, np.random.default_rng([self.seed, index, 1]))
    if self.digit_prob or self.stop_prob:
      text = captions.as_typed(text, np.random.default_rng([self.seed, index, 5]),
                               self.digit_prob, self.stop_prob)
    record = {"image": render(scene), "caption": text, "boxes": scene_boxes(scene, spec),
              "exact_caption": exact,
              "description": captions.caption(scene, np.random.default_rng([self.seed, index, 3]),
                                              style="full"),
              "meta": json.dumps({"scene": scene.to_dict(), "index": index})}
    if self.edit_turns:
      # Most documents are not edit documents: the chain is built only if used.
      record["edits"] = functools.partial(self.edit_chain, scene, index)
    return record

  def _prompt_first(self, index: int):
    """(prompt, spec, scene) for a prompt-first record, or Nones for a random scene."""
    rng = np.random.default_rng([self.seed, index, 4])
    if rng.random() >= self.prompt_prob:
      return None, None, None
    # Drawn only when asked for, so runs without compound prompts keep their records.
    if self.compound_prob and rng.random() < self.compound_prob:
      return sample_compound(rng, self.max_objects, self.resolution, self.prompt_size_probs,
                             self.cell_align)
    category = CATEGORIES[int(rng.integers(len(CATEGORIES)))]
    n = int(rng.integers(2, max(self.max_objects, 2) + 1)) if category == "binding" else None
    return sample_prompt(rng, category, n, self.resolution, self.prompt_size_probs,
                         self.cell_align)

  def edit_chain(self, scene, index: int) -> list[dict[str, Any]]:
    """Up to `edit_turns` edits of `scene`; shorter when no edit applies."""
    from unified_mm.data.shapes import edits  # noqa: PLC0415 (written alongside)
    rng = np.random.default_rng([self.seed, index, 2])
    chain = []
    for _ in range(self.edit_turns):
      try:
        instruction, scene = edits.sample_edit(scene, rng)
      except ValueError:  # no edit applies (e.g. nothing left to remove)
        break
      chain.append({"instruction": instruction, "image": render(scene)})
    return chain

  def __repr__(self) -> str:
    return (f"ShapesSource(seed={self.seed}, resolution={self.resolution}, "
            f"max_objects={self.max_objects}, edit_turns={self.edit_turns}, "
            f"prompt_prob={self.prompt_prob}, compound_prob={self.compound_prob}, "
            f"digit_prob={self.digit_prob}, stop_prob={self.stop_prob}, "
            f"cell_align={self.cell_align})")


def shapes_corpus(num_records: int = 1500, seed: int = 0, max_objects: int = 4,
                  edit_turns: int = 1) -> Iterator[str]:
  """Captions and edit instructions: the default tokenizer training corpus.

  It starts with every word of the shapes vocabulary, so numbers and kinds
  that the sampled scenes happen not to use still get whole-word pieces.
  """
  words = [*vocab.COLOUR_NAMES, *vocab.KINDS, *vocab.PLURALS.values(), *vocab.SIZE_NAMES,
           *vocab.NUMBER_WORDS]
  for w in words:
    yield f"{w} {w}s a {w}, an {w} and {w}"
  source = ShapesSource(seed=seed, max_objects=max_objects, edit_turns=edit_turns)
  for i in range(num_records):
    record = source[i]
    yield record["caption"]
    for e in edits_of(record):
      yield e["instruction"]
