"""Tiny configs of the shapes-world stages, for tests that need trained stage workdirs."""

import pathlib

from unified_mm.config.loading import load_config

SHAPES = str(pathlib.Path(__file__).resolve().parents[1] / "experiments/shapes.py")


def quick(c, steps=2):
  """A few steps, logged every step, synchronous saves at the end only, one device."""
  c.train.update(steps=steps, batch_size=8, log_every_steps=1, eval_every_steps=0, progress=False)
  c.ckpt.update(save_every_steps=0, async_save=False)
  c.mesh.update(data=1, fsdp=1, tensor=1)
  return c


def tiny_tokenizer_model(c):
  c.model.update(channels=(8, 16, 16), latent_decoder_channels=(16, 8),
                 preview_decoder_channels=(16, 16, 8), norm_groups=4)
  return c


def tiny_tokenizer():
  c = tiny_tokenizer_model(quick(load_config(SHAPES + ":tokenizer")))
  c.eval.num_scenes = 0
  return c


def tiny_renderer(tokenizer_dir):
  c = quick(load_config(SHAPES + ":renderer"))
  c.data.image_tokenizer_dir = str(tokenizer_dir)
  c.model.update(embed_dim=32, depth=1, num_heads=2)
  c.optim.ema_decay = 0.9
  c.eval.num_scenes = 0
  c.sample.steps = 2
  return c
