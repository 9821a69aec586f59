"""Published-scale image stages: a 256-px tokenizer and renderer at paper shapes.

    umm plan --config experiments/pods.py:renderer_dit_xl2@v5p-64
    umm plan --config experiments/images.py:tokenizer_vq16 --topology v5p-32
    umm train --config experiments/images.py:renderer_dit_xl2,runlocal --workdir runs/dit_smoke

Variants (`get_config("<name>[,runlocal]")`), deltas on experiments/shapes.py's
tokenizer and renderer (loss, data and evaluation unchanged; the model, batch
and optimiser are the papers'):

  tokenizer_vq16   256-px images, codes at /16 (16 x 16 = 256 tokens per image),
                   shaped like LlamaGen's VQ-16 (Sun et al. 2024,
                   tokenizer/tokenizer_image/vq_model.py `VQ_16`: ch 128,
                   ch_mult (1, 1, 2, 2, 4), 2 res blocks, z 256, codebook
                   16384 x 8; 71,883,403 params). Ours: the same encoder
                   widths and depth, 2^14-ish FSQ codes (levels 8,8,8,6,5 =
                   15,360 codes, FSQ paper's choice for that size) instead of
                   the VQ codebook, no attention or mid blocks (our conv
                   tokenizer has none), and two decoders instead of one: the
                   preview decoder (codes -> pixels, VQ-16's decoder role,
                   widths 512,512,256,256,128) and the latent decoder (a /8,
                   4-channel latent -> pixels, the SD-VAE-shaped space DiT-XL/2
                   runs in, widths 256,256,256,128), 2 res blocks each.
                   71,873,679 params (-0.01%).
  renderer_dit_xl2 the renderer's DiT as DiT-XL/2 (Peebles & Xie 2023,
                   `DiT_XL_2`: 32 x 32 x 4 latent, patch 2, D 1152, depth 28,
                   16 heads; 675,129,632 params with its 1001 x 1152 class
                   table). Ours: the same blocks (adaLN-zero, no cross-attention,
                   `model.cross_attention=False`), conditioned instead of on a
                   class on the 16 x 16 visual tokens added to the co-located
                   latent tokens (the renderer's `visual_add` path); q/k/v
                   without biases plus QK-norm scales, a 4-channel output (no
                   learned sigma: flow matching predicts a velocity).
                   674,909,008 params without the visual-token table
                   (15,360 x 1152 = 17.7M, the counterpart of DiT's class
                   table whose size is the tokenizer's codebook): -0.03%.
  renderer_pixart_xl2  a PixArt-α-shaped cross-attention DiT (Chen et al. 2023,
                   `PixArt_XL_2`: D 1152, depth 28, 16 heads, patch 2,
                   cross-attention to T5-XXL states (4096 wide, 120 tokens),
                   adaLN-single; 610,856,096 params with its caption MLP,
                   without T5). Ours: `model.adaln="single"`, the context is
                   the visual tokens plus the text as the frozen Chameleon-7B
                   transformer's 4096-wide hidden states (`text_source="ar"`),
                   projected by one linear layer (PixArt: a 2-layer MLP), a
                   pre-LN before cross-attention. 610,727,056 params without
                   the visual-token table: -0.02%.
  renderer_dit_b2, renderer_dit_l2   DiT-B/2 and DiT-L/2 shapes (the FLOP
                   counter's check against the DiT paper's Gflops).

`tests/experiments/test_experiments_image_presets.py` checks the counts with
`jax.eval_shape` (nothing allocated) and the renderer's FLOP counter
(models/renderer/flops.py) against the DiT paper's forward Gflops per image
(B/2 23.01, L/2 80.71, XL/2 118.64). Pod presets: experiments/pods.py.
`runlocal` shrinks a variant to a CPU-sized model and batch (64-px images).
"""

from __future__ import annotations

import os

import ml_collections

from unified_mm.config.loading import load_config

_SHAPES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shapes.py")

# The FSQ levels nearest LlamaGen's 16384-entry codebook (FSQ paper, Table 1: 2^14).
VQ16_LEVELS = (8, 8, 8, 6, 5)
VQ16_CODES = 8 * 8 * 8 * 6 * 5

# DiT's table 1: (width, depth, heads) per size; patch 2 throughout here.
DIT_SIZES = {"b": (768, 12, 12), "l": (1024, 24, 16), "xl": (1152, 28, 16)}


def tokenizer_vq16() -> ml_collections.ConfigDict:
  c = load_config(f"{_SHAPES}:tokenizer")
  c.unlock()
  c.model = ml_collections.ConfigDict(dict(
      image_size=256, channels=(128, 128, 256, 256, 512), num_res_blocks=2, stem_patch=1,
      latent_stage=3, latent_channels=4, code_stage=4, fsq_levels=VQ16_LEVELS,
      latent_decoder_channels=(256, 256, 256, 128),
      preview_decoder_channels=(512, 512, 256, 256, 128), decoder_res_blocks=2,
      norm_groups=32, dtype="bfloat16", param_dtype="float32"))
  c.data.update(resolution=256)
  # LlamaGen's tokenizer recipe: batch 128, lr 1e-4 constant, AdamW (0.9, 0.95), wd 0.05.
  c.train.update(steps=400_000, batch_size=128, log_every_steps=100, eval_every_steps=5000)
  c.optim.update(lr=1e-4, warmup_steps=0, decay="constant", weight_decay=0.05, b2=0.95)
  c.ckpt.update(save_every_steps=5000)
  c.name = "tokenizer_vq16"
  return c


def _renderer(size: str) -> ml_collections.ConfigDict:
  """A 256-px renderer of DiT size `size` on the VQ-16 tokenizer's /8 latent and /16 codes."""
  width, depth, heads = DIT_SIZES[size]
  c = load_config(f"{_SHAPES}:renderer")
  c.unlock()
  c.model = ml_collections.ConfigDict(dict(
      latent_size=32, latent_channels=4, patch_size=2, embed_dim=width, depth=depth,
      num_heads=heads, mlp_ratio=4.0, visual_codes=VQ16_CODES, visual_grid=16,
      text_source="none", text_vocab=512, text_len=1, ar_dim=0, context_depth=0,
      visual_add=True, visual_levels=VQ16_LEVELS, plan_channels=0, plan_residual=0.0,
      plan_refiner_width=0, plan_refiner_depth=2, layout_len=0, layout_plan_width=0,
      layout_plan_depth=2, cross_attention=False, adaln="block", scan_layers=True,
      remat="none", dtype="bfloat16", param_dtype="float32"))
  c.data.update(resolution=256, image_tokenizer_dir="runs/images/tokenizer_vq16")
  # DiT's recipe: batch 256, AdamW lr 1e-4 constant, no weight decay, EMA 0.9999.
  c.train.update(steps=400_000, batch_size=256, log_every_steps=100, eval_every_steps=10_000)
  c.optim.update(lr=1e-4, warmup_steps=0, decay="constant", weight_decay=0.0, b2=0.999,
                 ema_decay=0.9999)
  c.ckpt.update(save_every_steps=10_000)
  c.sample.update(steps=32, start=1.0)
  c.name = f"renderer_dit_{size}2"
  return c


def renderer_dit_xl2() -> ml_collections.ConfigDict:
  return _renderer("xl")


def renderer_dit_l2() -> ml_collections.ConfigDict:
  return _renderer("l")


def renderer_dit_b2() -> ml_collections.ConfigDict:
  return _renderer("b")


def renderer_pixart_xl2() -> ml_collections.ConfigDict:
  c = _renderer("xl")
  # PixArt-α: cross-attention to 120 text states 4096 wide (T5-XXL there, the
  # Chameleon-7B transformer's hidden states here), adaLN-single.
  c.model.update(cross_attention=True, adaln="single", text_source="ar", ar_dim=4096,
                 text_len=120)
  c.data.ar_dir = "runs/images/chameleon_7b"  # the frozen transformer whose states it reads
  # PixArt-α's 256-px stage: AdamW lr 2e-5, weight decay 0.03, batch 176 x 8 GPUs.
  c.optim.update(lr=2e-5, weight_decay=0.03)
  c.name = "renderer_pixart_xl2"
  return c


VARIANTS = {"tokenizer_vq16": tokenizer_vq16, "renderer_dit_xl2": renderer_dit_xl2,
            "renderer_dit_l2": renderer_dit_l2, "renderer_dit_b2": renderer_dit_b2,
            "renderer_pixart_xl2": renderer_pixart_xl2}


def runlocal(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """CPU-sized: 64-px images, a few narrow layers; the renderer on the parameter-free
  stand-in tokenizer (16 x 16 x 3 latent, 8 x 8 codes of 64) and its own text."""
  if c.stage == "tokenizer":
    c.model.update(image_size=64, channels=(16, 16, 32, 32, 64), latent_decoder_channels=(32, 16),
                   preview_decoder_channels=(64, 32, 32, 16, 16), norm_groups=8, dtype="float32")
    c.data.resolution = 64
  else:
    c.model.update(latent_size=16, latent_channels=3, visual_codes=64, visual_grid=8,
                   visual_levels=(4, 4, 4), embed_dim=64, depth=2, num_heads=2, dtype="float32")
    if c.model.text_source == "ar":  # no 7B transformer here: the renderer's own text embedding
      c.model.update(text_source="own", text_vocab=512, text_len=80, ar_dim=0)
      c.data.ar_dir = ""
    c.data.update(resolution=64, image_tokenizer_dir="")
  c.train.update(steps=20, batch_size=8, log_every_steps=5, eval_every_steps=0)
  c.ckpt.update(save_every_steps=10)
  return c


def get_config(arg: str = "renderer_dit_xl2") -> ml_collections.ConfigDict:
  name, _, flags = arg.partition(",")
  if name not in VARIANTS:
    raise KeyError(f"{name}: expected one of {sorted(VARIANTS)}")
  c = VARIANTS[name]()
  if flags == "runlocal":
    c = runlocal(c)
  elif flags:
    raise KeyError(f"{arg}: the only flag is `runlocal`")
  return c
