"""`umm caption --workdir ROOT IMAGE [IMAGE ...]`

image -> tokenizer visual tokens -> unified transformer (`BOS BOI codes EOI`)
-> greedy caption text. Prints `path<TAB>caption` per image.

An image of another size or mode is converted and resized, with a note on
stderr; a file PIL cannot read, or a run root without tokenizer/ and ar/, is
one line and exit code 2, before anything loads.
"""

from __future__ import annotations

import sys

from unified_mm.cli.commands.generate import (add_mesh_argument, fit_image, mesh_arg,
                                              open_image, positive_int)
from unified_mm.cli.main import UsageError

HELP = "Caption images with a trained run root (tokenizer/, ar/)."


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="run root holding tokenizer/ and ar/")
  parser.add_argument("images", nargs="+", help="image files (converted to RGB, resized)")
  parser.add_argument("--max-tokens", type=positive_int, default=48)
  add_mesh_argument(parser)


def run(args) -> int:
  images = [open_image(path, "image") for path in args.images]
  mesh = mesh_arg(args)
  from unified_mm.generate.stages import load_stages, missing_stage  # noqa: PLC0415
  problem = missing_stage(args.workdir, ("tokenizer", "ar"))
  if problem:
    raise UsageError(problem)

  import jax  # noqa: PLC0415
  import numpy as np  # noqa: PLC0415

  from unified_mm.generate.pipeline import caption_codes  # noqa: PLC0415

  stages = load_stages(args.workdir, need_renderer=False, mesh=mesh)
  pixels = []
  for path, image in zip(args.images, images):
    array, changes = fit_image(image, stages.frontend.image_size)
    if changes:
      print(f"note: {path}: {'; '.join(changes)}", file=sys.stderr)
    pixels.append(array)
  _, codes = stages.frontend.encode(np.stack(pixels))
  for path, text in zip(args.images, caption_codes(stages.ar, codes, jax.random.key(0),
                                                   max_tokens=args.max_tokens)):
    print(f"{path}\t{text}")
  return 0
