"""The grpo stage's periodic evaluator: the benchmark's planned + renderer path
on held-out prompts.

Held-out prompts (their own seed, every category, binding with 2-4 objects)
are planned as the benchmark plans them (the ar run's `sample.plan_cfg` and
`plan_temperature`, a fixed key); each plan is scored against its prompt
(`plan_correct`) and, when the stage draws (`rl.render`), drawn by the run
root's renderer and the image scored (`image_correct`: the benchmark's
verdict). The full benchmark (intervals, curve, captions) is `umm eval` on a
run root holding the post-trained transformer.
"""

from __future__ import annotations

from collections.abc import Iterator

import jax
import numpy as np

from unified_mm.data.shapes.spec import CATEGORIES
from unified_mm.generate.pipeline import plan_layouts
from unified_mm.models.transformer.loader import ArStage
from unified_mm.rl.prompts import PromptStream
from unified_mm.rl.rewards import Sample, verdict
from unified_mm.rl.rollout import parse_plans, render_plans


class PlanEvaluator:
  name = "plans"

  def __init__(self, vocab, tokenizer, config, *, n_per_category: int, seed: int,
               max_objects: int, plan_cfg: float, temperature: float, gap: int = -1,
               min_box: int = 1, fit: bool = False, drawer=None):
    self.vocab, self.tokenizer, self.config, self.drawer = vocab, tokenizer, config, drawer
    stream = PromptStream(seed, dict.fromkeys(CATEGORIES, 1.0), cycle=len(CATEGORIES))
    self.prompts = [stream[i] for i in range(n_per_category * len(CATEGORIES))]
    self.sampling = dict(max_objects=max_objects, cfg_scale=plan_cfg, temperature=temperature,
                         gap=gap, min_box=min_box, fit=fit)

  def run(self, model) -> Iterator[tuple[str, float]]:
    ar = ArStage(model, self.config, self.vocab, self.tokenizer)
    texts = [p[0] for p in self.prompts]
    plans = parse_plans(ar, plan_layouts(ar, texts, jax.random.key(0), **self.sampling))
    bins = self.vocab.layout_bins
    flags = {"plan_correct": [Sample(t, spec, None, objects, bins=bins).plan_verdict[1]
                              for (t, spec, _), objects in zip(self.prompts, plans)]}
    if self.drawer is not None:
      images = render_plans(self.drawer, texts, plans, 1, jax.random.key(1))
      flags["image_correct"] = [verdict(spec, image)[1]
                                for (_, spec, _), image in zip(self.prompts, images)]
    for name, values in flags.items():
      by_category = {c: [] for c in CATEGORIES}
      for (_, _, category), ok in zip(self.prompts, values):
        by_category[category].append(ok)
      for c in CATEGORIES:
        yield f"{name}/{c}", float(np.mean(by_category[c]))
      yield name, float(np.mean(values))
