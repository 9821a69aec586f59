"""The grammar mask of a written plan: a malformed layout cannot be sampled.

After the prompt's BOL the decoder may only write

    (label BOX x0 y0 x1 y1)* EOL

with 1..max_label text ids per label, coordinate tokens for the corners,
x1 >= x0 and y1 >= y0, and between min_objects and max_objects objects; after
EOL only EOL (the row is done, the caller cuts at the first EOL). The same
frozen dataclass protocol as `sampling.ImageSpanConstraint` (init / allowed /
update), so `sample(..., constraint=LayoutConstraint(...))` compiles it in.

State per row (all int32 [B]): phase, label length so far, objects so far, and
the current box's x0 and y0 bins.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

# phases
_OBJECT, _LABEL, _X0, _Y0, _X1, _Y1, _DONE = range(7)


@dataclasses.dataclass(frozen=True)
class LayoutConstraint:
  text_size: int
  box: int
  eol: int
  coord_offset: int
  bins: int
  max_label: int = 8
  min_objects: int = 1
  max_objects: int = 20

  def init(self, prompt: jax.Array, prompt_mask: jax.Array):
    del prompt_mask  # the prompt ends with BOL: every row starts a layout
    z = jnp.zeros((prompt.shape[0],), jnp.int32)
    return (z + _OBJECT, z, z, z, z)

  def allowed(self, state, vocab_size: int) -> jax.Array:  # [B, V] bool
    phase, label_len, objects, x0, y0 = (s[:, None] for s in state)
    ids = jnp.arange(vocab_size)[None]
    is_text = ids < self.text_size
    coord = ids - self.coord_offset
    is_coord = (coord >= 0) & (coord < self.bins)
    can_end = objects >= self.min_objects
    can_start = objects < self.max_objects
    return jnp.select(
        [phase == _OBJECT, phase == _LABEL, (phase == _X0) | (phase == _Y0),
         phase == _X1, phase == _Y1],
        [(is_text & can_start) | ((ids == self.eol) & can_end),
         (is_text & (label_len < self.max_label)) | (ids == self.box),
         is_coord, is_coord & (coord >= x0), is_coord & (coord >= y0)],
        ids == self.eol)

  def update(self, state, token: jax.Array):
    phase, label_len, objects, x0, y0 = state
    coord = token - self.coord_offset
    new_phase = jnp.select(
        [phase == _DONE, token == self.eol, phase == _OBJECT, phase == _LABEL,
         phase == _Y1],
        [phase, _DONE, _LABEL, jnp.where(token == self.box, _X0, _LABEL), _OBJECT],
        phase + 1).astype(jnp.int32)
    label_len = jnp.where(new_phase == _LABEL, label_len + 1, 0).astype(jnp.int32)
    objects = (objects + (phase == _Y1)).astype(jnp.int32)
    x0 = jnp.where(phase == _X0, coord, x0).astype(jnp.int32)
    y0 = jnp.where(phase == _Y0, coord, y0).astype(jnp.int32)
    return new_phase, label_len, objects, x0, y0


def layout_constraint(vocab, *, max_objects: int = 20, min_objects: int = 1) -> LayoutConstraint:
  from unified_mm.data.layout import MAX_LABEL_TOKENS  # noqa: PLC0415
  return LayoutConstraint(text_size=vocab.text_size, box=vocab.box, eol=vocab.eol,
                          coord_offset=vocab.coord_offset, bins=vocab.layout_bins,
                          max_label=MAX_LABEL_TOKENS, min_objects=min_objects,
                          max_objects=max_objects)
