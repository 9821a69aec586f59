"""Sampling sweep for a shapes run root: transformer CFG x temperature x renderer steps/chunks.

    umm eval --workdir runs/demo --sweep experiments/sweeps/shapes_sampling.py --out runs/demo/eval

One row per (AR checkpoint, setting): GenEval-style scores per category,
binding accuracy vs object count, preview-path scores, images/s. About a
minute per row on 2 CPU cores at the default 4 prompts per category.
"""

import itertools

import ml_collections


def get_sweep(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.prompts_per_category = 4
  c.categories = ("single", "colours", "two", "counting", "position", "binding")
  c.binding_counts = (2, 4, 6)
  c.seed = 0
  grid = itertools.product((1.0, 3.0), (1.0,), (4, 8), (1, 2))
  c.settings = [dict(cfg=cfg, temperature=t, steps=steps, chunks=k)
                for cfg, t, steps, k in grid]
  if arg == "quick":
    c.prompts_per_category = 1
    c.settings = c.settings[:2]
  return c
