"""Prompt specs: the structured content of a caption, which a scorer can check.

A caption asserts that some objects are present (with counts, optionally
colours and sizes) and possibly a spatial relation between two of them. The
spec is what both the caption grammar writes from and the parser reads into,
so a round trip text -> spec -> text is exact.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# GenEval's categories, renamed to this world: single object, two objects,
# counting, colours, relative position, attribute binding.
CATEGORIES: tuple[str, ...] = ("single", "two", "counting", "colours", "position", "binding")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")


@dataclasses.dataclass(frozen=True)
class Item:
  """Objects the caption asks for: `count` of them, or at least one if not exact.

  `exact` is set when the caption spells a number ("three stars"); an article
  ("a star") only asks that one exists.
  """
  kind: str
  colour: str | None = None
  size: str | None = None
  count: int = 1
  exact: bool = False

  def matches(self, kind: str, colour: str, size: str) -> bool:
    return (kind == self.kind and self.colour in (None, colour)
            and self.size in (None, size))


@dataclasses.dataclass(frozen=True)
class Relation:
  subject: int  # index into PromptSpec.items
  relation: str  # one of RELATIONS
  object: int


@dataclasses.dataclass(frozen=True)
class PromptSpec:
  category: str
  items: tuple[Item, ...]
  relations: tuple[Relation, ...] = ()

  def to_dict(self) -> dict[str, Any]:
    return {"category": self.category,
            "items": [dataclasses.asdict(i) for i in self.items],
            "relations": [dataclasses.asdict(r) for r in self.relations]}

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> PromptSpec:
    return cls(d["category"], tuple(Item(**i) for i in d["items"]),
               tuple(Relation(**r) for r in d.get("relations", ())))

  @property
  def num_objects(self) -> int:
    """How many objects the prompt asks for in all."""
    return sum(i.count for i in self.items)


def categorize(items: tuple[Item, ...], relations: tuple[Relation, ...] = ()) -> str:
  """The GenEval-style category a caption with these items belongs to."""
  if relations:
    return "position"
  if len(items) == 1:
    item = items[0]
    if item.exact:
      return "counting"
    return "colours" if item.colour else "single"
  if len(items) == 2 and not any(i.colour or i.exact for i in items):
    return "two"
  return "binding"


def make_spec(items: tuple[Item, ...], relations: tuple[Relation, ...] = ()) -> PromptSpec:
  return PromptSpec(categorize(items, relations), tuple(items), tuple(relations))
