"""The built-in shapes world, three stages: `tokenizer`, `ar`, `renderer`.

    umm train --config experiments/shapes.py:tokenizer --workdir runs/shapes/tokenizer
    umm train --config experiments/shapes.py:ar        --workdir runs/shapes/ar
    umm train --config experiments/shapes.py:renderer  --workdir runs/shapes/renderer

Each variant's own docstring gives its budget and expected result. A run root
(`runs/shapes`) holding the three workdirs is what `umm generate` reads.
"""

from __future__ import annotations


def tokenizer_config():
  """Stage 1 (owned by the image-tokenizer engineer)."""
  raise NotImplementedError("experiments/shapes.py:tokenizer lands with the image tokenizer")


def ar_config():
  """Stage 2 (owned by the lead)."""
  raise NotImplementedError("experiments/shapes.py:ar lands with the shapes AR task")


def renderer_config():
  """Stage 3 (owned by the renderer engineer)."""
  raise NotImplementedError("experiments/shapes.py:renderer lands with the renderer")


VARIANTS = {"tokenizer": tokenizer_config, "ar": ar_config, "renderer": renderer_config}


def get_config(arg: str = "tokenizer"):
  name, _, rest = arg.partition(",")
  config = VARIANTS[name]()
  if rest == "runlocal" or "runlocal" in rest.split(","):
    config.train.steps = min(config.train.steps, 20)
  return config
