"""`umm caption --workdir ROOT IMAGE [IMAGE ...]`

image -> tokenizer visual tokens -> unified transformer (`BOS BOI codes EOI`)
-> greedy caption text. Prints `path<TAB>caption` per image.
"""

from __future__ import annotations

HELP = "Caption images with a trained run root (tokenizer/, ar/)."


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="run root holding tokenizer/ and ar/")
  parser.add_argument("images", nargs="+", help="PNG files")
  parser.add_argument("--max-tokens", type=int, default=48)


def run(args) -> int:
  import jax
  import numpy as np
  from PIL import Image

  from unified_mm.generate.pipeline import caption_codes
  from unified_mm.generate.stages import load_stages

  stages = load_stages(args.workdir, need_renderer=False)
  images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in args.images])
  _, codes = stages.frontend.encode(images)
  for path, text in zip(args.images, caption_codes(stages.ar, codes, jax.random.key(0),
                                                   max_tokens=args.max_tokens)):
    print(f"{path}\t{text}")
  return 0
