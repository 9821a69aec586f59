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


def tiny_renderer(tokenizer_dir, variant="renderer"):
  c = quick(load_config(SHAPES + ":" + variant))
  c.data.image_tokenizer_dir = str(tokenizer_dir)
  c.model.update(embed_dim=32, depth=1, num_heads=2)
  c.optim.ema_decay = 0.9
  c.eval.num_scenes = 0
  c.sample.steps = 2
  if c.model.layout_plan_width:
    c.model.update(layout_plan_width=16, layout_plan_depth=1)
  return c


def train_tiny_ar_root(root, devices, ar_model=None):
  """tokenizer/ and ar/ of tiny, briefly trained stages (no renderer/); `ar_model`
  overrides the transformer's model keys."""
  from unified_mm.cli.commands.train import train_stage
  train_stage(tiny_tokenizer(), root / "tokenizer", devices=devices)
  ar = quick(load_config(SHAPES + ":ar"))
  ar.data.image_tokenizer_dir = str(root / "tokenizer")
  ar.model.update(d_model=32, num_layers=1, num_heads=2, num_kv_heads=1, head_dim=16, mlp_dim=64)
  ar.model.update(ar_model or {})
  ar.train.eval_batches = 0
  train_stage(ar, root / "ar", devices=devices)
  return root


def train_tiny_root(root, devices, *, text_only: bool = False, ar_model=None):
  """A run root of tiny, briefly trained stages: tokenizer/, ar/, renderer/ (and
  renderer_text_only/, the baseline, with `text_only`)."""
  from unified_mm.cli.commands.train import train_stage
  train_tiny_ar_root(root, devices, ar_model)
  train_stage(tiny_renderer(root / "tokenizer"), root / "renderer", devices=devices)
  if text_only:
    baseline = tiny_renderer(root / "tokenizer")
    baseline.model.update(visual_codes=0, plan_channels=0, plan_residual=0.0,
                          plan_refiner_width=0, layout_len=0)
    baseline.sample.start = 1.0  # no plan latent to start from
    train_stage(baseline, root / "renderer_text_only", devices=devices)
  return root
