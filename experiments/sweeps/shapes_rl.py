"""The benchmark before and after post-training (docs/rl.md): one setting, the
transformer's own sampling preset, 50 prompts per category on the held-out seed,
the binding curve to 8 objects, and captioning (which RL must not cost).

    umm eval --workdir runs/demo    --sweep experiments/sweeps/shapes_rl.py --out runs/demo/eval_rl
    umm eval --workdir runs/demo_rl --sweep experiments/sweeps/shapes_rl.py --out runs/demo_rl/eval_rl
"""

import ml_collections


def get_sweep(arg: str = ""):
  c = ml_collections.ConfigDict()
  c.prompts_per_category = 50
  c.binding_counts = (2, 4, 6, 8)
  c.seed = 20_011  # the benchmark's held-out prompt seed; RL draws from rl.prompt_seed
  c.caption_scenes = 50
  c.edit_scenes = 0
  c.settings = [{}]
  if arg == "quick":
    c.prompts_per_category = 2
    c.binding_counts = (2,)
    c.caption_scenes = 2
  return c
