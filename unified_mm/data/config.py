"""The `config.data` section: where examples come from and how they become rows.

Keys (all plain values, so any of them can be overridden from the command
line as `--config.data.<key>=...`):

  source            "shapes" | "array_record" | "tfds" | "wds"
  path              file, glob or directory for the non-shapes sources
  seed              seeds shuffling, document choice and caption dropout
  num_epochs        0: repeat forever (training); N: N passes (finite sources)
  image_size        images are decoded (and resized if `resize`) to this side
  resize            centre-crop + resize real images; False: other sizes are bad
  seq_len           tokens per packed row
  text_vocab_size   SentencePiece vocabulary size when a tokenizer is trained
  tokenizer_dir     directory holding `text_tokenizer.model`; "" trains one on
                    the shapes captions (about a second) when none is given
  max_caption_chars captions longer than this are skipped and counted
  doc_ratios        relative weights of the document kinds
  caption_dropout   probability that a caption->image document loses its
                    caption (the unconditional document classifier-free
                    guidance needs)
  loss_on_prompt    False: no loss on the conditioning part of a document
  layout_bins       coordinate bins per image side of the written plan (layout.py);
                    0: no plans, the vocabulary has no coordinate tokens
  layout_prob       probability that a caption->image document of a record with
                    boxes is planned (caption, layout, then codes); the rest stay plain.
                    doc_ratios' `caption_to_layout` adds plan-only documents
                    (caption, layout, no image): the planner's lesson without the
                    image's 64+ ids
  plain_description a plain caption->image document (no plan) reads the record's full
                    "description" unless the record's "exact_caption" is true: a
                    caption naming part of the image teaches the drawer to add objects
  edit_turns        edits chained in one multi-turn edit document
  max_objects       shapes world: objects per scene are 1..max_objects
  prompt_prob       shapes world: share of records made prompt-first (a GenEval-style
                    prompt of a random category, and a scene of exactly what it asks)
  compound_prob     shapes world: share of the prompt-first records whose prompt asks for
                    a count, a size and a relation at once ("two red circles left of
                    a blue square"; the categories ask each alone)
  digit_prob        shapes world: share of the records' captions written with their
                    counts as digits ("3 red stars"; descriptions keep the words)
  stop_prob         shapes world: share of the records' captions that end in a full stop
  prompt_size_weights  shapes world: weights of small, medium, large objects in those
                    scenes (a size the prompt names is the one drawn)
  cell_align        shapes world: every object's box corner on a lattice of this many
                    pixels (the image tokenizer's code cell, 8 at /8 codes); 0: any pixel
  num_records       shapes world: 0 for endless, N for a finite world of N scenes
  num_bins_factor   packing bins = local batch size * this (more: less padding)
  num_workers       Grain worker processes (0: in the training process)
  read_threads      threads per process reading and mapping records
  stand_in_grid     stand-in image codes: grid side (image_size / pooling)
  stand_in_levels   stand-in image codes: quantisation levels per channel
"""

from __future__ import annotations

import ml_collections

SOURCES = ("shapes", "array_record", "tfds", "wds")
DOC_KINDS = ("caption_to_image", "image_to_caption", "edit", "caption_to_layout")


def default_data_config(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(dict(
      source="shapes",
      path="",
      split="train",
      seed=0,
      num_epochs=0,
      image_size=64,
      resize=True,
      seq_len=256,
      text_vocab_size=512,
      tokenizer_dir="",
      max_caption_chars=1000,
      doc_ratios=dict(caption_to_image=0.5, image_to_caption=0.3, edit=0.2, caption_to_layout=0.0),
      caption_dropout=0.1,
      loss_on_prompt=True,
      layout_bins=0,
      layout_prob=0.5,
      plain_description=False,
      edit_turns=1,
      max_objects=4,
      prompt_prob=0.0,
      compound_prob=0.0,
      digit_prob=0.0,
      stop_prob=0.0,
      prompt_size_weights=(1.0, 1.0, 1.0),
      cell_align=0,
      num_records=0,
      num_bins_factor=2,
      num_workers=0,
      read_threads=0,
      prefetch_buffer_size=64,
      stand_in_grid=8,
      stand_in_levels=4,
  ))
  c.update(overrides)
  return c


def validate_data_config(data: ml_collections.ConfigDict, check_source: bool = True) -> None:
  """Raises ConfigError naming the key, before any file is opened or worker started.

  `check_source=False` when the caller passes its own source object.
  """
  from unified_mm.config.loading import ConfigError  # noqa: PLC0415

  def fail(key: str, why: str):
    raise ConfigError(f"data.{key}={data[key]!r}: {why}")

  if check_source and data.source not in SOURCES:
    fail("source", f"expected one of {SOURCES}")
  if check_source and data.source != "shapes" and not data.path:
    fail("path", f"data.source={data.source!r} reads files: set data.path")
  unknown = set(data.doc_ratios) - set(DOC_KINDS)
  if unknown:
    fail("doc_ratios", f"unknown document kinds {sorted(unknown)}; expected {DOC_KINDS}")
  if any(v < 0 for v in data.doc_ratios.values()) or sum(data.doc_ratios.values()) <= 0:
    fail("doc_ratios", "weights must be >= 0 and not all 0")
  for key in ("caption_dropout", "layout_prob", "prompt_prob", "compound_prob",
              "digit_prob", "stop_prob"):
    if not 0.0 <= data[key] <= 1.0:
      fail(key, "a probability in [0, 1]")
  w = tuple(data.get("prompt_size_weights", (1.0,) * 3))
  if len(w) != 3 or min(w) < 0 or sum(w) <= 0:
    fail("prompt_size_weights", "three weights (small, medium, large), >= 0, not all 0")
  for key in ("seq_len", "image_size", "num_bins_factor", "max_caption_chars"):
    if data[key] <= 0:
      fail(key, "must be > 0")
  for key in ("num_workers", "read_threads", "num_epochs", "edit_turns", "num_records",
              "layout_bins", "cell_align"):
    if data[key] < 0:
      fail(key, "must be >= 0")
