"""The renderer evaluated from TRUE visual tokens on held-out shapes scenes.

For each held-out scene (seed `eval.seed`, never trained on): the frozen
tokenizer gives its visual tokens; the renderer turns them (plus the scene's
text, when it reads text: its full description with `description_prob` 1,
the script's default, else a random-style caption) into a latent, the tokenizer's decoder into pixels, and
the shapes analyzer reads the pixels back. The preview path decodes the same
tokens directly (the DALL-E-1/VQGAN-style baseline). Metrics, per path
(`preview_*` for the preview decoder):

  roundtrip      share of scenes whose (kind, colour) multiset survives
  palette_share  share of pixels within PALETTE_TOLERANCE of a palette colour
                 or the background (~1.0 on clean renders; blur lowers it)
  psnr           mean per-image PSNR (dB) against the original render
  latent_mse     (renderer only) MSE to the true normalised latent

The script adds `true_latent_*`: the same metrics for the tokenizer's latent
decoder on the encoder's own latents, the ceiling of any renderer decoded
through it.

    python -m unified_mm.eval.renderer_eval --workdir runs/shapes/renderer \
        --num-scenes 500 [--steps 8 --method heun --cfg 1.0 --chunks 1]

prints the metrics as JSON (the numbers in docs/renderer.md).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Iterator

import jax
import numpy as np
from PIL import Image

from unified_mm.eval.image_metrics import analyzer_roundtrip, image_grid, palette_share, psnr_uint8


class RendererEvaluator:
  name = "renderer"

  def __init__(self, task, *, num_scenes: int, seed: int = 10_007, max_objects: int = 4,
               batch_size: int = 100, steps: int = 8, method: str = "euler",
               cfg_scale: float = 1.0, chunks: int = 1, shift: float = 1.0,
               start: float = 1.0, grid_images: int = 8, out_dir: str | pathlib.Path | None = None,
               description_prob: float = 0.0, layout_prob: float = 0.0):
    from unified_mm.tasks.renderer import scene_batch  # noqa: PLC0415
    self.task = task
    self.sample = dict(steps=steps, method=method, cfg_scale=float(cfg_scale), chunks=chunks,
                       shift=float(shift), start=float(start))
    self.batch_size, self.seed, self.grid_images = batch_size, seed, grid_images
    self.out_dir = pathlib.Path(out_dir) if out_dir is not None else None
    self.scenes, self.images, self.batch = scene_batch(
        task, seed=seed, indices=range(num_scenes), min_objects=1, max_objects=max_objects,
        description_prob=description_prob, layout_prob=layout_prob)
    self.preview = np.concatenate([task.frontend.decode_codes(self.batch["codes"][i:i + batch_size])
                                   for i in range(0, num_scenes, batch_size)])
    self.preview_metrics = {"preview_roundtrip": analyzer_roundtrip(self.preview, self.scenes),
                            "preview_palette_share": palette_share(self.preview),
                            "preview_psnr": float(psnr_uint8(self.preview, self.images).mean())}

  def render(self, model) -> tuple[np.ndarray, np.ndarray]:
    """(latents, images) rendered from the held-out scenes' true tokens."""
    from unified_mm.tasks.renderer import sample_latents  # noqa: PLC0415
    z = sample_latents(self.task, model, self.batch, seed=self.seed, batch_size=self.batch_size,
                       **self.sample)
    n = self.batch_size
    return z, np.concatenate([self.task.frontend.decode_latent(z[i:i + n])
                              for i in range(0, len(z), n)])

  def run(self, model) -> Iterator[tuple[str, float]]:
    z, images = self.render(model)
    yield "roundtrip", analyzer_roundtrip(images, self.scenes)
    yield "palette_share", palette_share(images)
    yield "psnr", float(psnr_uint8(images, self.images).mean())
    yield "latent_mse", float(np.mean(np.square(z - self.batch["latent"])))
    yield from self.preview_metrics.items()
    if self.out_dir is not None and jax.process_index() == 0:
      self.write_grid(images)

  def write_grid(self, images: np.ndarray) -> None:
    k = self.grid_images
    grids = self.out_dir / "eval"
    grids.mkdir(parents=True, exist_ok=True)
    index = len(list(grids.glob("renderer_grid_*.png")))
    Image.fromarray(image_grid([self.images[:k], self.preview[:k], images[:k]])).save(
        grids / f"renderer_grid_{index:04d}.png")


def ceiling(evaluator: RendererEvaluator) -> dict[str, float]:
  """The latent decoder on the TRUE latents: the best any renderer can do through it."""
  frontend, n = evaluator.task.frontend, evaluator.batch_size
  latents = evaluator.batch["latent"]
  images = np.concatenate([frontend.decode_latent(latents[i:i + n])
                           for i in range(0, len(latents), n)])
  return {"true_latent_roundtrip": analyzer_roundtrip(images, evaluator.scenes),
          "true_latent_palette_share": palette_share(images),
          "true_latent_psnr": float(psnr_uint8(images, evaluator.images).mean())}


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="the renderer's training workdir")
  parser.add_argument("--num-scenes", type=int, default=500)
  parser.add_argument("--tokenizer-dir", default="",
                      help="the image tokenizer the renderer was trained on (default: its config's)")
  parser.add_argument("--max-objects", type=int, default=4)
  parser.add_argument("--seed", type=int, default=10_007)
  parser.add_argument("--batch-size", type=int, default=100)
  parser.add_argument("--steps", type=int, default=None)
  parser.add_argument("--method", default=None, choices=("euler", "heun"))
  parser.add_argument("--cfg", type=float, default=None)
  parser.add_argument("--chunks", type=int, default=None)
  parser.add_argument("--text", choices=("caption", "description"), default="description",
                      help="the text beside the tokens: a random-style caption, or the full description")
  parser.add_argument("--start", type=float, default=None,
                      help="ODE start time; < 1 refines the noised plan latent")
  parser.add_argument("--out-dir", default="",
                      help="write eval/renderer_grid_*.png (rows: original | preview | renderer) here")
  args = parser.parse_args(argv)
  from unified_mm.models.renderer.loader import load_renderer  # noqa: PLC0415
  from unified_mm.tasks.renderer import RendererTask  # noqa: PLC0415
  model, config = load_renderer(args.workdir)
  if args.tokenizer_dir:
    config.data.image_tokenizer_dir = args.tokenizer_dir
  sample = dict(config.sample)
  for key, value in (("steps", args.steps), ("method", args.method), ("cfg_scale", args.cfg),
                     ("chunks", args.chunks), ("start", args.start)):
    if value is not None:
      sample[key] = value
  t0 = time.perf_counter()
  evaluator = RendererEvaluator(RendererTask(config), num_scenes=args.num_scenes, seed=args.seed,
                                max_objects=args.max_objects, batch_size=args.batch_size,
                                out_dir=args.out_dir or None,
                                description_prob=float(args.text == "description"),
                                layout_prob=float(config.eval.get("layout_prob", 0.0)), **sample)
  t1 = time.perf_counter()
  metrics = dict(evaluator.run(model))
  metrics.update(ceiling(evaluator))
  t2 = time.perf_counter()
  out = {"workdir": args.workdir, "num_scenes": args.num_scenes, "text": args.text, **sample,
         **metrics,
         "setup_s": round(t1 - t0, 1), "render_s": round(t2 - t1, 1)}
  print(json.dumps(out, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
