"""Sampling sweep for a shapes run root: code CFG x plan temperature x renderer steps/chunks,
around the transformer preset (code CFG 12, plan temperature 0.1; docs/quality.md).

    umm eval --workdir runs/demo --sweep experiments/sweeps/shapes_sampling.py --out runs/demo/eval

One row per (AR checkpoint, setting), each with its own report.md: GenEval-style
scores per category with intervals for every path (planned / plain, renderer /
preview, text-only when trained), binding accuracy vs object count, plan
diagnostics. Setting keys: eval/sweep_keys.py's AR_KEYS and RENDER_KEYS.
At the default 10 prompts per category a row takes a few minutes on 2 CPU cores.
"""

import itertools

import ml_collections


def get_sweep(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.prompts_per_category = 10
  c.binding_counts = (2, 4, 8, 12)
  # A dev prompt seed: choose a setting here, then confirm it on the benchmark's
  # held-out 20,011 (`--config.seed=20011`), so the choice is not fitted to it.
  c.seed = 4_242
  c.caption_scenes = 0
  c.edit_scenes = 0
  grid = itertools.product((6.0, 12.0), (0.1, 0.5), (2, 8), (1, 2))
  c.settings = [dict(cfg_scale=cfg, plan_temperature=t, steps=steps, chunks=k)
                for cfg, t, steps, k in grid]
  if arg == "quick":
    c.prompts_per_category = 1
    c.settings = c.settings[:2]
    c.binding_counts = (2, 4)
  return c
