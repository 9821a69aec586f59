"""Global batch shapes for the ahead-of-time compile, from the config alone.

The plan compiles the real step, which needs the batch's shapes and dtypes.
Most stages give them from one row of their own data. The renderer cannot
before its tokenizer is trained: its rows are the tokenizer's latents and
codes (`data.image_tokenizer_dir`), and the parameter-free stand-in has the
shapes world's sizes, not a 256-px preset's. Its batch is a pure function of
`config.model`, written out here, key for key as `RendererTask.batch_axes`.
"""

from __future__ import annotations

import numpy as np

Shapes = dict[str, tuple[tuple[int, ...], np.dtype]]


def renderer_batch(model, batch_size: int) -> Shapes:
  from unified_mm.data.layout import MAX_LABEL_TOKENS  # noqa: PLC0415

  b, f32, i32 = batch_size, np.dtype(np.float32), np.dtype(np.int32)
  latent = (b, int(model.latent_size), int(model.latent_size), int(model.latent_channels))
  g, text = int(model.visual_grid), int(model.text_len)
  shapes = {"latent": (latent, f32), "codes": ((b, g, g), i32),
            "text_ids": ((b, text), i32), "text_mask": ((b, text), np.dtype(bool))}
  if model.text_source == "ar":
    shapes["text_states"] = ((b, text, int(model.ar_dim)), f32)
  if model.visual_codes and model.get("plan_channels", 0):
    shapes["plan"] = (latent, f32)
  objects = int(model.get("layout_len", 0))
  if objects:
    shapes |= {"layout_ids": ((b, objects, MAX_LABEL_TOKENS), i32),
               "layout_boxes": ((b, objects, 4), f32),
               "layout_mask": ((b, objects), np.dtype(bool))}
  return shapes


def abstract_batch(task, batch_size: int) -> Shapes:
  """Global batch shapes: the renderer's from its config, others from one real row."""
  if getattr(task, "name", "") == "renderer":
    return renderer_batch(task.config.model, batch_size)
  data = task.make_data(0, 1, 1)
  row = next(data)
  if hasattr(data, "close"):
    data.close()
  return {k: ((batch_size, *np.shape(v)[1:]), np.asarray(v).dtype) for k, v in row.items()}
