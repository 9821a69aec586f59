"""The RL prompt stream: categories in proportion, every weighted one in each cycle,
prompts a function of their index and never from an evaluation seed."""

from collections import Counter

import pytest

from unified_mm.data.shapes.captions import parse_caption, with_digits
from unified_mm.data.shapes.spec import CATEGORIES
from unified_mm.rl.prompts import PromptStream, category_cycle

WEIGHTS = dict(single=1, two=1, counting=2, colours=1, position=2, binding=2)


def test_cycle_follows_the_weights():
  assert Counter(category_cycle(WEIGHTS, 9)) == WEIGHTS
  assert Counter(category_cycle(WEIGHTS, 18)) == {c: 2 * n for c, n in WEIGHTS.items()}


def test_every_weighted_category_appears_when_the_cycle_has_room():
  halves = dict(WEIGHTS, single=0.5, colours=0.5)
  assert set(category_cycle(halves, 8)) == set(CATEGORIES)
  assert "two" not in category_cycle(dict(WEIGHTS, two=0), 8)
  assert len(category_cycle(WEIGHTS, 4)) == 4


def test_bad_weights():
  with pytest.raises(ValueError, match="unknown"):
    category_cycle(dict(colour=1), 4)
  with pytest.raises(ValueError, match="every category weight is 0"):
    category_cycle(dict(single=0), 4)


def test_prompts_are_a_function_of_their_index_and_follow_the_cycle():
  a, b = PromptStream(31_337, WEIGHTS, 9), PromptStream(31_337, WEIGHTS, 9)
  assert [a[i][0] for i in range(20)] == [b[i][0] for i in range(20)]
  assert [a[i][2] for i in range(9)] == a.categories
  assert all(a[i][1].category == a[i][2] for i in range(18))
  with pytest.raises(ValueError, match="evaluation seed"):
    PromptStream(20_011, WEIGHTS, 9)


def test_compound_prompts_join_the_cycle_only_when_weighted():
  assert category_cycle(WEIGHTS, 9) == category_cycle(dict(WEIGHTS, compound=0), 9)
  stream = PromptStream(31_337, dict(WEIGHTS, compound=2), 11)
  compound = [stream[i] for i in range(22) if stream[i][2] == "compound"]
  assert len(compound) == 4
  for _, spec, _ in compound:  # several items, some counted, sized or related
    assert len(spec.items) >= 2 and spec.num_objects <= 6


def test_typed_prompts_count_in_digits_and_stop_with_the_same_specs():
  words = PromptStream(31_337, WEIGHTS, 9)
  digits = PromptStream(31_337, WEIGHTS, 9, digit_prob=1.0, stop_prob=1.0)
  typed = [(words[i], digits[i]) for i in range(36)]
  for (text, spec, cat), (text_d, spec_d, cat_d) in typed:
    assert (spec_d, cat_d) == (spec, cat) and text_d == with_digits(text) + "."
    assert parse_caption(text_d) == spec
  assert any(any(ch.isdigit() for ch in d[0]) for _, d in typed if d[2] == "counting")
