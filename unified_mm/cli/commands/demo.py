"""`umm demo --workdir ROOT [--scale S]`: the whole system on the shapes world.

Trains the three stages into one run root, each resuming if interrupted:
ROOT/tokenizer_base, whose latent decoder ROOT/tokenizer_crisp fine-tunes for
crisp output; ROOT/ar and ROOT/renderer on its tokens and latents; then
ROOT/tokenizer, that decoder fine-tuned on the renderer's own samples (what
`umm generate` reads). Then it draws the built-in
benchmark's prompts, scores the images with the scene analyzer and writes
ROOT/demo/{grid.png, scores.json}. `--scale 0.1` shortens every stage ten-fold
(a smoke run; images will be poor). `--config.<stage>.<key>=value` overrides
one stage's config (by its variant name in experiments/shapes.py), e.g.
`--config.ar.train.batch_size=8`.
"""

from __future__ import annotations

import json
import logging
import pathlib
import sys

HELP = "Train tokenizer -> transformer -> renderer on the shapes world, then generate and score."

# (variant of experiments/shapes.py, workdir under ROOT), in training order.
STAGES = (("tokenizer", "tokenizer_base"), ("tokenizer_decoder", "tokenizer_crisp"), ("ar", "ar"),
          ("renderer", "renderer"), ("latent_decoder", "tokenizer"))
CATEGORIES = ("single", "colours", "two", "counting", "position")


def add_arguments(parser) -> None:
  parser.add_argument("--workdir", required=True, help="run root (tokenizer/, ar/, renderer/)")
  parser.add_argument("--scale", type=float, default=1.0, help="multiplies every stage's steps")
  parser.add_argument("--prompts-per-category", type=int, default=4)
  parser.add_argument("--seed", type=int, default=0)


def _stage_config(stage: str, root: pathlib.Path, scale: float, overrides: list[str]):
  from unified_mm.config.loading import apply_overrides, load_config  # noqa: PLC0415
  experiments = pathlib.Path(__file__).resolve().parents[3] / "experiments" / "shapes.py"
  config = load_config(f"{experiments}:{stage}")
  steps = max(10, int(config.train.steps * scale))
  if stage == "tokenizer":
    linked = []
  elif stage == "tokenizer_decoder":
    linked = [f"ckpt.init_from={root / 'tokenizer_base'}"]
  elif stage == "latent_decoder":
    pool = max(int(config.train.batch_size), int(config.data.pool_size * scale))
    linked = [f"ckpt.init_from={root / 'tokenizer_crisp'}", f"data.renderer_dir={root / 'renderer'}",
              f"data.pool_size={pool}"]
  else:
    linked = [f"data.image_tokenizer_dir={root / 'tokenizer_crisp'}"]
  every = max(steps // 3, 1)
  return apply_overrides(config, [f"train.steps={steps}", f"ckpt.save_every_steps={every}",
                                  f"train.eval_every_steps={every}", *linked,
                                  *_stage_overrides(stage, overrides)])


def _stage_overrides(stage: str, overrides: list[str]) -> list[str]:
  """`--config.<stage>.a.b=v` applies `a.b=v` to that stage only."""
  prefix = f"--config.{stage}."
  return [o[len(prefix):] for o in overrides if o.startswith(prefix)]


def _benchmark(root: pathlib.Path, per_category: int, seed: int) -> dict:
  import numpy as np  # noqa: PLC0415

  from unified_mm.data.shapes.preview import preview_grid  # noqa: PLC0415
  from unified_mm.data.shapes.prompts import sample_prompt  # noqa: PLC0415
  from unified_mm.data.shapes.scorer import score, summarize  # noqa: PLC0415
  from unified_mm.generate.pipeline import generate  # noqa: PLC0415
  from unified_mm.generate.stages import load_stages  # noqa: PLC0415

  rng = np.random.default_rng(seed)
  asked = [sample_prompt(rng, c)[:2] for c in CATEGORIES for _ in range(per_category)]
  stages = load_stages(root)
  sample = stages.renderer_task.config.sample
  images = []
  for start in range(0, len(asked), 8):
    prompts = [text for text, _ in asked[start:start + 8]]
    out, _ = generate(stages, prompts, seed=seed + start, steps=int(sample.steps),
                      chunks=int(sample.chunks), render_cfg=float(sample.cfg_scale),
                      method=str(sample.method))
    images.extend(np.asarray(out))
  results = [score(spec, image) for (_, spec), image in zip(asked, images)]
  out_dir = root / "demo"
  out_dir.mkdir(parents=True, exist_ok=True)
  preview_grid(images, [text for text, _ in asked], out_dir / "grid.png", cols=len(CATEGORIES))
  summary = summarize(results)
  (out_dir / "scores.json").write_text(json.dumps(summary, indent=2))
  return summary


def run(args) -> int:
  from unified_mm.cli.commands.train import _setup_logging  # noqa: PLC0415
  _setup_logging("INFO")
  from unified_mm.cli.commands.train import train_stage as train_and_evaluate  # noqa: PLC0415

  root = pathlib.Path(args.workdir)
  log = logging.getLogger("unified_mm.demo")
  for stage, workdir in STAGES:
    config = _stage_config(stage, root, args.scale, args.overrides)
    config.lock()
    log.info("stage %s: %d steps -> %s", stage, config.train.steps, root / workdir)
    train_and_evaluate(config, root / workdir)
  summary = _benchmark(root, args.prompts_per_category, args.seed)
  print(json.dumps({"root": str(root), **{k: round(v, 3) for k, v in summary.items()}}),
        file=sys.stdout)
  return 0
