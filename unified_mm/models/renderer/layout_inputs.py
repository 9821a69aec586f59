"""Written plans -> the renderer's fixed-size layout arrays.

Plans are lists of `data.layout.LayoutObject` (from a record's boxes or parsed
from the transformer's output), None for a row without one. Objects past
`max_objects` are dropped (the renderer's context has that many slots), labels
past the format's `MAX_LABEL_TOKENS` ids are cut.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from unified_mm.data.layout import MAX_LABEL_TOKENS


def layout_arrays(tokenizer, layouts: Sequence[Sequence | None], max_objects: int,
                  bins: int) -> dict[str, np.ndarray]:
  """{"layout_ids": int32 [B, O, W] (0-padded), "layout_boxes": float32 [B, O, 4] in
  [0, 1], "layout_mask": bool [B, O]}."""
  b = len(layouts)
  ids = np.zeros((b, max_objects, MAX_LABEL_TOKENS), np.int32)
  boxes = np.zeros((b, max_objects, 4), np.float32)
  mask = np.zeros((b, max_objects), bool)
  for i, objects in enumerate(layouts):
    for j, obj in enumerate(list(objects or ())[:max_objects]):
      label = tokenizer.encode(obj.label)[:MAX_LABEL_TOKENS]
      ids[i, j, :len(label)] = label
      boxes[i, j] = obj.unit_box(bins)
      mask[i, j] = True
  return {"layout_ids": ids, "layout_boxes": boxes, "layout_mask": mask}
