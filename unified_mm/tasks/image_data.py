"""Where the image stages get batches from a real source (`data.source` = tfds | wds |
array_record); the shapes world (the default) keeps its own step-indexed iterators.

Both stages read through `data/image_records.py` (the transformer's sources and
decoder, Grain sharding per host, the iterator state in every checkpoint, bad
records counted). The tokenizer wants pixels; the renderer wants the frozen
tokenizer's latent and visual tokens of each image plus its caption, and reads
them pre-computed (`umm data build --codes ROOT/tokenizer`) when the records
hold them, saying so in the log.
"""

from __future__ import annotations

import json
import logging

import numpy as np

from unified_mm.data.image_records import (ImageBatchIterator, RecordToImage, image_dataset,
                                           image_source, pretokenised_keys)
from unified_mm.data.layout import objects_from_boxes

log = logging.getLogger(__name__)
PRETOKENISED = ("latent", "codes")  # both, or the renderer encodes the image itself


def is_real(data) -> bool:
  return data.get("source", "shapes") != "shapes"


def record_to_image(data, *, need_caption: bool, pretokenised: dict | None = None
                    ) -> RecordToImage:
  return RecordToImage(image_size=int(data.resolution), resize=bool(data.get("resize", True)),
                       need_caption=need_caption,
                       max_caption_chars=int(data.get("max_caption_chars", 1000)),
                       pretokenised=pretokenised or {})


def real_image_iterator(data, to_image: RecordToImage, to_batch, *, stage: str,
                        process_index: int, process_count: int,
                        local_batch_size: int) -> ImageBatchIterator:
  source = image_source(data)
  if to_image.pretokenised:
    found = pretokenised_keys(source, list(to_image.pretokenised))
    if len(found) == len(to_image.pretokenised):
      log.info("%s: reading pre-tokenised %s from %s (the image tokenizer is not run on them)",
               stage, "+".join(found), data.path)
    else:
      log.info("%s: %s holds no pre-tokenised latent+codes: images are encoded in the input "
               "loop (`umm data build --codes ROOT/tokenizer` takes that out)", stage, data.path)
  log.info("%s: reading %r (%d records, %d held out)", stage, source, len(source),
           int(data.get("held_out_records", 0)))
  ds = image_dataset(data, to_image, source, process_index=process_index,
                     process_count=process_count)
  return ImageBatchIterator(ds, local_batch_size, to_batch)


class RendererRows:
  """Rows of real records -> the renderer's batch (latent, codes, text, plan, layout).

  Rows holding a pre-computed latent and codes use them; the others' images go
  through the frozen tokenizer in one call. A record's boxes become its written
  plan with probability `data.layout_prob` (the same draw for the same record
  position, whatever the restart)."""

  def __init__(self, task):
    self.task = task

  def __call__(self, rows: list[dict]) -> dict[str, np.ndarray]:
    task, d = self.task, self.task.config.data
    todo = [i for i, r in enumerate(rows) if "latent" not in r]
    if todo:
      z_new, codes_new = task.frontend.encode(np.stack([rows[i]["image"] for i in todo]))
      for j, i in enumerate(todo):
        rows[i] = {**rows[i], "latent": z_new[j], "codes": codes_new[j]}
    z = np.stack([np.asarray(r["latent"], np.float32) for r in rows])
    codes = np.stack([np.asarray(r["codes"], np.int32) for r in rows])
    layouts = None
    if task.uses_layout:
      bins, p = int(d.layout_bins), float(d.get("layout_prob", 0.0))
      layouts = [objects_from_boxes(json.loads(r["boxes"]), bins)
                 if "boxes" in r and np.random.default_rng(
                     [int(d.seed), int(r["index"]), 4]).random() < p else None for r in rows]
    return {"latent": z, **task.conditioning(codes, [r["caption"] for r in rows], layouts)}


def renderer_pretokenised(task) -> dict[str, tuple[int, ...]]:
  """The shapes a record's pre-computed latent and codes must have for this renderer."""
  m = task.config.model
  return {"latent": (int(m.latent_size),) * 2 + (int(m.latent_channels),),
          "codes": (int(m.visual_grid),) * 2}
