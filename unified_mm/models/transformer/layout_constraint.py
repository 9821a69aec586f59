"""The grammar mask of a written plan: a malformed layout cannot be sampled.

After the prompt's BOL the decoder may only write

    (label BOX x0 y0 x1 y1)* EOL

with 1..max_label text ids per label, coordinate tokens for the corners,
x1 >= x0 and y1 >= y0, and between min_objects and max_objects objects; after
EOL only EOL (the row is done, the caller cuts at the first EOL). The same
frozen dataclass protocol as `sampling.ImageSpanConstraint` (init / allowed /
update), so `sample(..., constraint=LayoutConstraint(...))` compiles it in.

With `gap` >= 0 the boxes of one plan may not overlap and keep `gap` free bins
between them, as in a world whose objects never touch (the shapes world keeps
2 px): a plan of overlapping boxes names objects no image of that world can
show, and the drawer smears them into each other. Every box is then at least
`min_box` bins a side, and the corners are masked in order against the boxes
already written: (x0, y0) to a free `min_box` square's corner, x1 so the box's
top `min_box` rows stay free, y1 so the whole box does. A box can always shrink
to its free square, so no row is left without an allowed token, and a plan
stops (EOL) once no square is free. Grounded real data overlaps (a person on a
horse): `gap` = -1 there, the default.

With `label_sides` a box must also hold the object its label names: an entry
(size word, kind word, w, h) asks a label holding both words for a box of at
least w x h bins, and its corner goes where such a box is free. Without that
rule a planner that puts a large object into a gap only `min_box` bins high
gets a squashed box, which the drawer fills with a squashed shape that reads
as another kind (a large heart in 23 x 12 bins is drawn as a semicircle). When
no such box is free any more the label falls back to the `min_box` square, so
a plan is never left without an allowed token.

State per row: phase, label length so far, objects so far, the current box's
x0, y0 and x1 bins, the label's size and kind word (index into `label_sides`'
words, -1 none yet) (int32 [B]) and, with a gap, the bins taken so far (bool
[B, x, y], each box grown by `gap`).
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
  gap: int = -1  # free bins kept between boxes; -1: boxes may overlap
  min_box: int = 1  # with a gap: the smallest box side, in bins
  # with a gap: (size word id, kind word id, w, h), a label's least box in bins
  label_sides: tuple[tuple[int, int, int, int], ...] = ()

  def init(self, prompt: jax.Array, prompt_mask: jax.Array):
    del prompt_mask  # the prompt ends with BOL: every row starts a layout
    z = jnp.zeros((prompt.shape[0],), jnp.int32)
    taken = jnp.zeros((prompt.shape[0], self.bins, self.bins) if self.gap >= 0 else
                      (prompt.shape[0], 0, 0), bool)
    return (z + _OBJECT, z, z, z, z, z, z - 1, z - 1, taken)

  def _words(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (tuple(sorted({e[0] for e in self.label_sides})),
            tuple(sorted({e[1] for e in self.label_sides})))

  def _least_box(self, size_word: jax.Array, kind_word: jax.Array) -> tuple[jax.Array, jax.Array]:
    """[B] int32 each: the least width and height of the current label's box."""
    m = jnp.full(size_word.shape, self.min_box, jnp.int32)
    if not self.label_sides:
      return m, m
    sizes, kinds = self._words()
    table = [[(self.min_box, self.min_box)] * len(kinds) for _ in sizes]
    for a, b, w, h in self.label_sides:
      table[sizes.index(a)][kinds.index(b)] = (max(w, self.min_box), max(h, self.min_box))
    wh = jnp.asarray(table, jnp.int32)[jnp.maximum(size_word, 0), jnp.maximum(kind_word, 0)]
    named = (size_word >= 0) & (kind_word >= 0)
    return jnp.where(named, wh[:, 0], m), jnp.where(named, wh[:, 1], m)

  def _free_bins(self, state) -> tuple[jax.Array, ...]:
    """[B, bins] bool each: where x0, y0, x1 and y1 may go without touching a
    written box (all True without a gap)."""
    _, _, _, x0, y0, x1, size_word, kind_word, taken = state
    bins = jnp.arange(self.bins)[None]
    if self.gap < 0:
      every = jnp.ones((x0.shape[0], self.bins), bool)
      return every, every, every, every
    sums = jnp.pad(jnp.cumsum(jnp.cumsum(taken.astype(jnp.int32), 1), 2),
                   ((0, 0), (1, 0), (1, 0)))  # 2-D prefix sums of the taken bins
    w, h = self._least_box(size_word, kind_word)
    free = self._free_boxes(sums, w, h)  # [B, x, y]: a w x h box fits with this corner
    if self.label_sides:  # no such box left: the min_box square's
      m = jnp.full(x0.shape, self.min_box, jnp.int32)
      room = jnp.any(free, axis=(1, 2))
      w, h = jnp.where(room, w, m), jnp.where(room, h, m)
      free = jnp.where(room[:, None, None], free, self._free_boxes(sums, m, m))
    first_free = lambda blocked: jnp.cumsum(blocked, axis=1) == 0  # free up to the first block
    x0_ok = jnp.any(free, axis=2)
    y0_ok = jnp.take_along_axis(free, x0[:, None, None], axis=1)[:, 0]
    top = (bins >= y0[:, None]) & (bins < (y0 + h)[:, None])  # [B, y]: the box's top h rows
    x1_ok = first_free(jnp.any(taken & top[:, None], axis=2) & (bins >= x0[:, None]))
    x1_ok &= bins >= (x0 + w - 1)[:, None]
    in_box = (bins >= x0[:, None]) & (bins <= x1[:, None])  # [B, x]
    y1_ok = first_free(jnp.any(taken & in_box[:, :, None], axis=1) & (bins >= y0[:, None]))
    y1_ok &= bins >= (y0 + h - 1)[:, None]
    return x0_ok, y0_ok, x1_ok, y1_ok

  def _free_boxes(self, s: jax.Array, w: jax.Array, h: jax.Array) -> jax.Array:
    """[B, x, y] bool: the w x h box ([B] int32 sides) with its corner at (x, y)
    is inside the image and holds no taken bin (`s`: [B, n+1, n+1] prefix sums)."""
    n = self.bins
    start = jnp.broadcast_to(jnp.arange(n)[None], (w.shape[0], n))  # [B, n]
    x_end, y_end = start + w[:, None], start + h[:, None]  # exclusive
    rows = lambda xs: jnp.take_along_axis(s, jnp.clip(xs, 0, n)[:, :, None], axis=1)  # [B, n, n+1]
    at = lambda a, ys: jnp.take_along_axis(a, jnp.clip(ys, 0, n)[:, None, :], axis=2)  # [B, n, n]
    lo, hi = rows(start), rows(x_end)
    window = at(hi, y_end) - at(lo, y_end) - at(hi, start) + at(lo, start)
    inside = (x_end <= n)[:, :, None] & (y_end <= n)[:, None, :]
    return inside & (window == 0)

  def allowed(self, state, vocab_size: int) -> jax.Array:  # [B, V] bool
    phase, label_len, objects, x0, y0, *_ = (s[:, None] if s.ndim == 1 else s for s in state)
    x0_ok, y0_ok, x1_ok, y1_ok = self._free_bins(state)
    ids = jnp.arange(vocab_size)[None]
    is_text = ids < self.text_size
    coord = ids - self.coord_offset
    is_coord = (coord >= 0) & (coord < self.bins)
    at = lambda ok: is_coord & ok[:, jnp.clip(coord[0], 0, self.bins - 1)]  # [B, V]
    can_end = objects >= self.min_objects
    can_start = (objects < self.max_objects) & jnp.any(x0_ok, axis=1, keepdims=True)
    return jnp.select(
        [phase == _OBJECT, phase == _LABEL, phase == _X0, phase == _Y0,
         phase == _X1, phase == _Y1],
        [(is_text & can_start) | ((ids == self.eol) & (can_end | ~can_start)),
         (is_text & (label_len < self.max_label)) | (ids == self.box),
         at(x0_ok), at(y0_ok), at(x1_ok) & (coord >= x0), at(y1_ok) & (coord >= y0)],
        ids == self.eol)

  def update(self, state, token: jax.Array):
    phase, label_len, objects, x0, y0, x1, size_word, kind_word, taken = state
    coord = token - self.coord_offset
    if self.gap >= 0:  # a finished box takes its bins, grown by the gap
      bins, g = jnp.arange(self.bins)[None], self.gap
      xs = (bins >= (x0 - g)[:, None]) & (bins <= (x1 + g)[:, None])
      ys = (bins >= (y0 - g)[:, None]) & (bins <= (coord + g)[:, None])
      taken = taken | ((phase == _Y1)[:, None, None] & xs[:, :, None] & ys[:, None, :])
    new_phase = jnp.select(
        [phase == _DONE, token == self.eol, phase == _OBJECT, phase == _LABEL,
         phase == _Y1],
        [phase, _DONE, _LABEL, jnp.where(token == self.box, _X0, _LABEL), _OBJECT],
        phase + 1).astype(jnp.int32)
    label_len = jnp.where(new_phase == _LABEL, label_len + 1, 0).astype(jnp.int32)
    objects = (objects + (phase == _Y1)).astype(jnp.int32)
    x0 = jnp.where(phase == _X0, coord, x0).astype(jnp.int32)
    y0 = jnp.where(phase == _Y0, coord, y0).astype(jnp.int32)
    x1 = jnp.where(phase == _X1, coord, x1).astype(jnp.int32)
    size_word, kind_word = (self._word(ids, token, word, new_phase) for ids, word in
                            zip(self._words(), (size_word, kind_word)))
    return new_phase, label_len, objects, x0, y0, x1, size_word, kind_word, taken

  @staticmethod
  def _word(ids: tuple[int, ...], token: jax.Array, word: jax.Array, new_phase: jax.Array):
    """The label's word among `ids` (its index), -1 from each new object on."""
    if not ids:
      return word
    hit = token[:, None] == jnp.asarray(ids)[None]
    word = jnp.where((new_phase == _LABEL) & jnp.any(hit, axis=1), jnp.argmax(hit, axis=1), word)
    return jnp.where(new_phase == _OBJECT, -1, word).astype(jnp.int32)


def layout_constraint(vocab, *, max_objects: int = 20, min_objects: int = 1,
                      gap: int = -1, min_box: int = 1,
                      label_sides: tuple[tuple[int, int, int, int], ...] = ()
                      ) -> LayoutConstraint:
  from unified_mm.data.layout import MAX_LABEL_TOKENS  # noqa: PLC0415
  return LayoutConstraint(text_size=vocab.text_size, box=vocab.box, eol=vocab.eol,
                          coord_offset=vocab.coord_offset, bins=vocab.layout_bins,
                          max_label=MAX_LABEL_TOKENS, min_objects=min_objects,
                          max_objects=max_objects, gap=int(gap), min_box=int(min_box),
                          label_sides=tuple(tuple(int(v) for v in e) for e in label_sides))
