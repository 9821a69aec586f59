"""The RL prompt stream: the benchmark's grammar, on seeds the benchmark never uses.

Prompt i of the stream is a pure function of (seed, i), so a resumed run sees
the prompts an uninterrupted one would. Categories are dealt in a fixed cycle
whose shares follow `weights` (largest remainder over one cycle), so every
category with weight > 0 appears in every step of at least `cycle` prompts and
its reward can be logged per step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from unified_mm.data.shapes.captions import as_typed
from unified_mm.data.shapes.prompts import sample_compound, sample_prompt
from unified_mm.data.shapes.spec import CATEGORIES, PromptSpec
from unified_mm.eval.benchmark import BENCHMARK_SEED, CAPTION_SEED, EDIT_SEED


# The benchmark's categories, then compound prompts (a count, a size and a relation
# at once; `prompts.sample_compound`), which no benchmark category asks.
PROMPT_KINDS: tuple[str, ...] = (*CATEGORIES, "compound")


def category_cycle(weights: Mapping[str, float], length: int) -> list[str]:
  """`length` category names in proportion to `weights` (largest remainder, each
  weighted category at least once when `length` allows), interleaved."""
  unknown = set(weights) - set(PROMPT_KINDS)
  if unknown:
    raise ValueError(f"unknown categories {sorted(unknown)}; known: {PROMPT_KINDS}")
  names = [c for c in PROMPT_KINDS if float(weights.get(c, 0.0)) > 0]
  if not names:
    raise ValueError("every category weight is 0")
  w = np.asarray([float(weights[c]) for c in names])
  quota = w / w.sum() * length
  # Every weighted category at least once when the cycle has room (a weight of 0.5
  # in 8 slots must not round to none); the other slots by largest remainder.
  counts = np.zeros(len(names), int)
  if length >= len(names):
    counts += 1
    quota = np.maximum(quota - 1, 0)
    quota = quota / quota.sum() * (length - len(names)) if quota.sum() else quota
  counts += np.floor(quota).astype(int)
  for i in np.argsort(-(quota - np.floor(quota)), kind="stable")[:length - counts.sum()]:
    counts[i] += 1
  # Interleave: the k-th copy of a category sits at (k + 0.5) / count of the cycle.
  slots = sorted(((k + 0.5) / n, i) for i, n in enumerate(counts) for k in range(n))
  return [names[i] for _, i in slots]


class PromptStream:
  """Prompt i -> (text, spec, category)."""

  def __init__(self, seed: int, weights: Mapping[str, float], cycle: int,
               counting: Sequence[int] = (2, 3, 4), binding: Sequence[int] = (2, 3, 4),
               resolution: int = 64, max_objects: int = 6, digit_prob: float = 0.0,
               stop_prob: float = 0.0):
    if seed in (BENCHMARK_SEED, CAPTION_SEED, EDIT_SEED):
      raise ValueError(f"prompt seed {seed} is an evaluation seed")
    self.seed, self.resolution = int(seed), resolution
    self.max_objects = int(max_objects)  # compound prompts: no more than a plan may hold
    # "3 red stars.": counts and full stops as people type them
    self.digit_prob, self.stop_prob = float(digit_prob), float(stop_prob)
    self.categories = category_cycle(weights, cycle)
    self.counts = {"counting": tuple(counting), "binding": tuple(binding)}

  def __getitem__(self, i: int) -> tuple[str, PromptSpec, str]:
    category = self.categories[i % len(self.categories)]
    rng = np.random.default_rng([self.seed, i])
    if category == "compound":
      text, spec, _ = sample_compound(rng, self.max_objects, self.resolution)
    else:
      counts = self.counts.get(category)
      n = int(rng.choice(counts)) if counts else None
      text, spec, _ = sample_prompt(rng, category, n, self.resolution)
    if self.digit_prob or self.stop_prob:
      text = as_typed(text, np.random.default_rng([self.seed, i, 5]), self.digit_prob,
                      self.stop_prob)
    return text, spec, category
