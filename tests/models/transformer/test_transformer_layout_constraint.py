"""The plan's grammar mask: whatever the model's logits, a sampled plan parses."""

import numpy as np
import pytest

from transformer_factories import make_tiny
from unified_mm.data.layout import parse_layout
from unified_mm.data.vocab import Vocab
from unified_mm.models.transformer.layout_constraint import layout_constraint
from unified_mm.models.transformer.sampling import sample

BINS = 8


class _Words:
  """A stand-in text tokenizer: decode only (parse_layout reads labels back)."""

  def decode(self, ids):
    return " ".join(f"w{int(i)}" for i in ids)


@pytest.fixture(scope="module")
def setup():
  vocab = Vocab(text_size=40, image_codes=16, pad_to=16, layout_bins=BINS)
  model = make_tiny(seed=3, vocab_size=vocab.size)
  return vocab, model


@pytest.mark.parametrize("temperature,max_objects", [(1.0, 4), (3.0, 6), (0.0, 3)])
def test_every_sampled_plan_parses(setup, temperature, max_objects):
  import jax
  vocab, model = setup
  rows = 16
  prompt = np.tile(np.array([[vocab.bos, 5, 6, vocab.bol]], np.int32), (rows, 1))
  steps = max_objects * (8 + 5) + 1
  out = np.asarray(sample(model, prompt, steps, jax.random.key(0), temperature=temperature,
                          constraint=layout_constraint(vocab, max_objects=max_objects)))
  for row in out:
    assert (row == vocab.eol).any(), "every plan closes within its budget"
    end = int(np.flatnonzero(row == vocab.eol)[0])
    assert (row[end:] == vocab.eol).all(), "nothing but EOL after the plan"
    objects = parse_layout(vocab, _Words(), [vocab.bol, *row[:end + 1]])
    assert 1 <= len(objects) <= max_objects
    for o in objects:
      x0, y0, x1, y1 = o.box
      assert 0 <= x0 <= x1 < BINS and 0 <= y0 <= y1 < BINS


def test_mask_forces_the_grammar(setup):
  """Step by step: after a label only text or BOX; after BOX only coordinates; x1 >= x0."""
  import jax.numpy as jnp
  vocab, _ = setup
  c = layout_constraint(vocab, max_objects=2)
  state = c.init(jnp.zeros((1, 3), jnp.int32), jnp.ones((1, 3), bool))
  allowed = lambda: np.flatnonzero(np.asarray(c.allowed(state, vocab.size))[0])
  assert set(allowed()) == set(range(vocab.text_size))  # at least one object: no EOL yet
  for token, expect in [(7, {*range(vocab.text_size), vocab.box}),
                        (vocab.box, set(range(vocab.coord_offset, vocab.coord_offset + BINS))),
                        (vocab.coord_offset + 5, None), (vocab.coord_offset + 2, None),
                        (vocab.coord_offset + 6, None)]:
    state = c.update(state, jnp.array([token]))
    if expect is not None:
      assert set(allowed()) == expect
  # After x0=5, y0=2, x1=6: y1 must be >= 2.
  assert set(allowed()) == set(range(vocab.coord_offset + 2, vocab.coord_offset + BINS))


@pytest.mark.parametrize("gap,min_box,max_objects", [(0, 1, 12), (1, 1, 6), (1, 2, 12)])
def test_gap_keeps_sampled_boxes_apart_and_every_plan_closes(setup, gap, min_box, max_objects):
  """With a gap, the boxes of a plan never come within `gap` bins of each other
  and none is smaller than `min_box`, even when the model asks for more objects
  than the 8x8 bins hold (hot sampling, 12): the plan stops once none fits."""
  import jax
  vocab, model = setup
  rows = 16
  prompt = np.tile(np.array([[vocab.bos, 5, 6, vocab.bol]], np.int32), (rows, 1))
  steps = max_objects * (8 + 5) + 1
  out = np.asarray(sample(model, prompt, steps, jax.random.key(1), temperature=3.0,
                          constraint=layout_constraint(vocab, max_objects=max_objects, gap=gap,
                                                      min_box=min_box)))
  sizes = []
  for row in out:
    assert (row == vocab.eol).any()
    end = int(np.flatnonzero(row == vocab.eol)[0])
    objects = parse_layout(vocab, _Words(), [vocab.bol, *row[:end + 1]])
    sizes.append(len(objects))
    for i, a in enumerate(objects):
      assert a.box[2] - a.box[0] + 1 >= min_box and a.box[3] - a.box[1] + 1 >= min_box, a.box
      for b in objects[:i]:
        apart_x = a.box[0] > b.box[2] + gap or b.box[0] > a.box[2] + gap
        apart_y = a.box[1] > b.box[3] + gap or b.box[1] > a.box[3] + gap
        assert apart_x or apart_y, f"{a.box} and {b.box} within {gap} bins"
  assert max(sizes) > 1  # the gap leaves room for several objects


def test_gap_mask_step_by_step(setup):
  """A box at x 2..4, y 2..3 with gap 1 takes x 1..5, y 1..4: a point inside is
  not allowed, the top edge of a box left of it stops before it."""
  import jax.numpy as jnp
  vocab, _ = setup
  c = layout_constraint(vocab, max_objects=3, gap=1)
  state = c.init(jnp.zeros((1, 3), jnp.int32), jnp.ones((1, 3), bool))
  coords = lambda: {int(i) - vocab.coord_offset for i in
                    np.flatnonzero(np.asarray(c.allowed(state, vocab.size))[0])}
  for token in [7, vocab.box, *(vocab.coord_offset + v for v in (2, 2, 4, 3)), 8, vocab.box]:
    state = c.update(state, jnp.array([token]))
  assert coords() == set(range(BINS))  # every column keeps a free bin
  state = c.update(state, jnp.array([vocab.coord_offset + 3]))  # x0 = 3
  assert coords() == {0, 5, 6, 7}  # y0: rows 1..4 are taken in column 3
  state = c.update(state, jnp.array([vocab.coord_offset + 0]))  # y0 = 0
  assert coords() == set(range(3, BINS))  # x1: row 0 is free
  state = c.update(state, jnp.array([vocab.coord_offset + 4]))  # x1 = 4
  assert coords() == {0}  # y1: row 1 is taken under x 3..4


# Labels naming a "size" word (10-14) and a "kind" word (20-24) ask for a box of
# at least (w, h) bins: 2-4 wide, 1-3 high.
SIDES = tuple((a, b, 2 + (a + b) % 3, 1 + (a * b) % 3) for a in range(10, 15) for b in range(20, 25))


def _room(boxes, w, h, gap):
  """Whether a w x h box fits anywhere in the BINS grid away from `boxes`."""
  taken = np.zeros((BINS, BINS), bool)
  for x0, y0, x1, y1 in boxes:
    taken[max(x0 - gap, 0):x1 + gap + 1, max(y0 - gap, 0):y1 + gap + 1] = True
  return any(not taken[x:x + w, y:y + h].any()
             for x in range(BINS - w + 1) for y in range(BINS - h + 1))


def test_fitted_boxes_hold_what_their_label_names(setup):
  """With `label_sides` a labelled box is at least its label's (w, h) whenever
  such a box was still free when it was written (the plan's earlier boxes grown
  by the gap), and at least `min_box` otherwise; every plan still closes."""
  import jax
  vocab, model = setup
  rows, max_objects, gap = 32, 10, 1
  prompt = np.tile(np.array([[vocab.bos, 5, 6, vocab.bol]], np.int32), (rows, 1))
  out = np.asarray(sample(model, prompt, max_objects * (8 + 5) + 1, jax.random.key(2),
                          temperature=3.0,
                          constraint=layout_constraint(vocab, max_objects=max_objects, gap=gap,
                                                       label_sides=SIDES)))
  sides = {(a, b): (w, h) for a, b, w, h in SIDES}
  fitted = fallback = 0
  for row in out:
    assert (row == vocab.eol).any()
    end = int(np.flatnonzero(row == vocab.eol)[0])
    objects = parse_layout(vocab, _Words(), [vocab.bol, *row[:end + 1]])
    for i, o in enumerate(objects):
      words = [int(t[1:]) for t in o.label.split()]
      size = next((t for t in reversed(words) if 10 <= t < 15), None)
      kind = next((t for t in reversed(words) if 20 <= t < 25), None)
      x0, y0, x1, y1 = o.box
      if size is None or kind is None:
        continue
      w, h = sides[size, kind]
      if _room([p.box for p in objects[:i]], w, h, gap):
        assert x1 - x0 + 1 >= w and y1 - y0 + 1 >= h, (o.label, o.box, (w, h))
        fitted += 1
      else:
        fallback += 1
  assert fitted > 10 and fallback > 0  # both branches were sampled


def test_fitted_box_mask_step_by_step(setup):
  """A label asking for 4 x 2 bins may only start where 4 x 2 is free; once no
  such box is left it falls back to the min_box square."""
  import jax.numpy as jnp
  vocab, _ = setup
  c = layout_constraint(vocab, max_objects=4, gap=0, label_sides=((10, 20, 4, 2),))
  state = c.init(jnp.zeros((1, 3), jnp.int32), jnp.ones((1, 3), bool))
  coords = lambda: {int(i) - vocab.coord_offset for i in
                    np.flatnonzero(np.asarray(c.allowed(state, vocab.size))[0])}
  for t in [10, 20, vocab.box]:
    state = c.update(state, jnp.array([t]))
  assert coords() == set(range(BINS - 4 + 1))  # x0: 4 wide fits from column 0..4
  for t in [vocab.coord_offset + 4, vocab.coord_offset + 6]:  # x0 = 4, y0 = 6
    state = c.update(state, jnp.array([t]))
  assert coords() == {7}  # x1 >= x0 + 3
  state = c.update(state, jnp.array([vocab.coord_offset + 7]))
  assert coords() == {7}  # y1 >= y0 + 1
  # A box over rows 0..6 of every column leaves no 4 x 2 box, only row 7.
  state = c.init(jnp.zeros((1, 3), jnp.int32), jnp.ones((1, 3), bool))
  for t in [7, vocab.box, *(vocab.coord_offset + v for v in (0, 0, 7, 6)), 10, 20, vocab.box]:
    state = c.update(state, jnp.array([t]))
  assert coords() == set(range(BINS))  # x0: a 1 x 1 square in row 7 of any column
  state = c.update(state, jnp.array([vocab.coord_offset + 6]))  # x0 = 6
  assert coords() == {7}  # y0: row 7
  state = c.update(state, jnp.array([vocab.coord_offset + 7]))
  assert coords() == {6, 7}  # x1: the min_box square's, not 4 wide
