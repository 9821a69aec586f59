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
