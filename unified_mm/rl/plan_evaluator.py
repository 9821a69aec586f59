"""The grpo stage's periodic evaluator: the planner's half of the benchmark.

Held-out prompts (their own seed, every category, binding with 2-4 objects)
are planned as the benchmark plans them (the ar run's `sample.plan_cfg` and
`plan_temperature`, a fixed key) and each plan is scored against its prompt
(`plan_correct`, no pixels). The whole benchmark, renderer included, is
`umm eval` on a run root holding the post-trained transformer.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np

from unified_mm.data.layout import parse_layout
from unified_mm.data.shapes.scorer import score
from unified_mm.data.shapes.spec import CATEGORIES
from unified_mm.eval.plan_scoring import plan_scene
from unified_mm.generate.pipeline import plan_layouts
from unified_mm.generate.stages import ArStage
from unified_mm.rl.prompts import PromptStream


class PlanEvaluator:
  name = "plans"

  def __init__(self, vocab, tokenizer, config, *, n_per_category: int, seed: int,
               max_objects: int, plan_cfg: float, temperature: float):
    self.vocab, self.tokenizer, self.config = vocab, tokenizer, config
    stream = PromptStream(seed, dict.fromkeys(CATEGORIES, 1.0), cycle=len(CATEGORIES))
    self.prompts = [stream[i] for i in range(n_per_category * len(CATEGORIES))]
    self.sampling = dict(max_objects=max_objects, cfg_scale=plan_cfg, temperature=temperature)

  def run(self, model) -> Iterator[tuple[str, float]]:
    ar = ArStage(model, self.config, self.vocab, self.tokenizer)
    plans = plan_layouts(ar, [p[0] for p in self.prompts], jax.random.key(0), **self.sampling)
    correct = {c: [] for c in CATEGORIES}
    for (_, spec, category), ids in zip(self.prompts, plans):
      try:
        scene = plan_scene(parse_layout(self.vocab, self.tokenizer, ids), self.vocab.layout_bins)
        ok = bool(score(spec, scene)["correct"])
      except ValueError:
        ok = False
      correct[category].append(ok)
    for c in CATEGORIES:
      yield f"plan_correct/{c}", float(np.mean(correct[c]))
    yield "plan_correct", float(np.mean([v for c in CATEGORIES for v in correct[c]]))
