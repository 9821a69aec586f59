"""What a user is told about a prompt before it is drawn (the shapes tokenizer)."""

import pytest

from unified_mm.generate.prompt_notes import prompt_notes, unknown_words


@pytest.mark.parametrize("typed", ["A Red Circle Left Of A Blue Square.", "3 RED STARS",
                                   "  a  green star "])
def test_prompts_typed_as_people_type_them_get_no_note(tokenizer, typed):
  assert prompt_notes(typed, tokenizer) == []


def test_unseen_words_are_named_and_counts_are_not(tokenizer):
  assert unknown_words("3 zorblax stars and 12 circles", tokenizer) == ["zorblax"]
  notes = prompt_notes("27 stars", tokenizer, max_objects=6)
  assert len(notes) == 1 and "asks for 27 objects" in notes[0]
