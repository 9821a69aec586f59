"""`config.data.source` -> a random-access source of raw records."""

from __future__ import annotations

import ml_collections


def make_source(data: ml_collections.ConfigDict):
  """Every source has `__len__` and `__getitem__(i) -> record dict` (see record_codec)."""
  if data.source == "shapes":
    from unified_mm.data.sources.shapes_source import ENDLESS, ShapesSource  # noqa: PLC0415
    edits = data.edit_turns if data.doc_ratios.get("edit", 0.0) > 0 else 0
    return ShapesSource(seed=data.seed, resolution=data.image_size,
                        max_objects=data.max_objects, edit_turns=edits,
                        prompt_prob=data.get("prompt_prob", 0.0),
                        prompt_size_weights=tuple(data.get("prompt_size_weights", (1.0,) * 3)),
                        compound_prob=data.get("compound_prob", 0.0),
                        digit_prob=data.get("digit_prob", 0.0),
                        stop_prob=data.get("stop_prob", 0.0),
                        cell_align=data.get("cell_align", 0),
                        length=data.get("num_records", 0) or ENDLESS)
  if not data.path:
    raise ValueError(f"data.source={data.source!r} needs data.path")
  if data.source == "array_record":
    from unified_mm.data.sources.array_record_source import ArrayRecordSource  # noqa: PLC0415
    return ArrayRecordSource(data.path)
  if data.source == "wds":
    from unified_mm.data.sources.webdataset_source import WebDatasetSource  # noqa: PLC0415
    return WebDatasetSource(data.path)
  if data.source == "tfds":
    from unified_mm.data.sources.tfds_builder import TfdsSource  # noqa: PLC0415
    return TfdsSource(data.path, split=data.split)
  raise ValueError(f"unknown data.source {data.source!r}")
