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
