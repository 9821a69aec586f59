"""Your own image-caption data, 256 px, CPU-sized: `tokenizer`, `ar`, `renderer`.

Tiny models (a laptop trains each in minutes; raise the widths and steps on real
hardware), 256 x 256 images, a tokenizer with a /8 latent (32 x 32 x 4, what the
renderer diffuses) and /16 codes (16 x 16 = 256 visual tokens per image). Every
stage reads the same records through the Grain pipeline (docs/data.md, "Bring
your own data"); the last `data.held_out_records` records are never trained on
and evaluated instead. From shards to a PNG (DATA: `shards/{00000..00099}.tar`
in the img2dataset layout, NNNNNN.jpg + NNNNNN.txt [+ .json with boxes]):

    # 0. look at it, and train the text tokenizer on its captions
    umm data preview   --source wds --path 'shards/*.tar' --image-size 256 --out preview.png
    umm data tokenizer --source wds --path 'shards/*.tar' --out runs/real/text --vocab-size 512
    # 1. image tokenizer
    umm train --config experiments/real.py:tokenizer --workdir runs/real/tokenizer \\
        --config.data.path='shards/*.tar'
    # 2. pre-tokenise once (codes + latents beside each record; optional, makes 3-4 faster)
    umm data build --source wds --path 'shards/*.tar' --codes runs/real/tokenizer \\
        --out data/real.array_record
    # 3. transformer, 4. renderer (on the pre-tokenised file, or on the shards as they are)
    umm train --config experiments/real.py:ar --workdir runs/real/ar \\
        --config.data.source=array_record --config.data.path=data/real.array_record \\
        --config.data.tokenizer_dir=runs/real/text --config.data.image_tokenizer_dir=runs/real/tokenizer
    umm train --config experiments/real.py:renderer --workdir runs/real/renderer \\
        --config.data.source=array_record --config.data.path=data/real.array_record \\
        --config.data.tokenizer_dir=runs/real/text --config.data.image_tokenizer_dir=runs/real/tokenizer
    # 5. draw
    umm generate --workdir runs/real --prompt "a red motorcycle in a workshop" --out out.png

A TFDS data set instead: `umm data tfds --images DIR --out tfds_data` (DIR holds
NAME.jpg + NAME.txt), then `--config.data.source=tfds --config.data.path=<the
directory it prints>`; ArrayRecord files of `umm data build`: `source=array_record`.
Budgets below are for 2 CPU cores; the test `tests/data/image_stages/test_real_photos.py`
trains all three a few steps on 12 photographs.
"""

from __future__ import annotations

import ml_collections

RESOLUTION = 256
CODE_LEVELS = (8, 5, 5, 5)  # 1,000 visual tokens
TEXT_VOCAB = 512


def _image_data(**overrides) -> ml_collections.ConfigDict:
  """The image stages' data section: any source, `resolution` px."""
  d = ml_collections.ConfigDict(dict(
      source="wds", path="", split="train", seed=0, resolution=RESOLUTION, resize=True,
      num_epochs=0, max_caption_chars=1000, held_out_records=8, num_workers=0, read_threads=0,
      prefetch_buffer_size=64,
      min_objects=1, max_objects=4))  # used only with data.source=shapes
  d.update(overrides)
  return d


def tokenizer_config():
  """Stage 1 at 256 px: /8 latent (4 channels), /16 FSQ codes (1,000 ids); 0.1M params.

  Budget: 300 steps of 8 images, ~10 minutes on 2 cores. Expect the latent
  path's held-out PSNR (eval/tokenizer/latent_psnr) to pass ~20 dB within the
  budget on photographs and the codes' to trail it (16x16 tokens for 65k pixels).
  """
  from unified_mm.config.base import base_config  # noqa: PLC0415

  c = base_config("tokenizer")
  c.model = ml_collections.ConfigDict(dict(
      image_size=RESOLUTION, channels=(16, 32, 32), num_res_blocks=1, stem_patch=4,
      latent_stage=1, latent_channels=4, code_stage=2, fsq_levels=CODE_LEVELS,
      latent_decoder_channels=(32, 16), preview_decoder_channels=(32, 32, 16),
      decoder_res_blocks=1, norm_groups=8, dtype="float32", param_dtype="float32"))
  # Photographs have few flat edges: no edge or tip weights (the shapes preset's).
  c.loss = ml_collections.ConfigDict(dict(
      l1_weight=1.0, mse_weight=1.0, code_weight=1.0, latent_reg_weight=1e-4, edge_weight=0.0,
      tip_weight=0.0, latent_noise=0.1, freeze_encoder=False))
  c.data = _image_data()
  # num_scenes 0: the shapes evaluators are off; a real source's held-out records are used.
  c.eval = ml_collections.ConfigDict(dict(batch_size=8, grid_images=8, num_scenes=0))
  c.train.update(steps=300, batch_size=8, log_every_steps=10, eval_every_steps=100)
  c.optim.update(lr=2e-3, warmup_steps=30, min_lr_ratio=0.05, weight_decay=0.0, b2=0.99)
  c.ckpt.update(save_every_steps=100)
  return c


def ar_config():
  """Stage 2: the transformer on caption -> image and image -> caption documents of
  256 codes; d128 x 2 layers (~0.7M params). Budget: 300 steps of 8 x 320 tokens.
  No plans (data.layout_bins=0) unless the records carry boxes: set layout_bins=64
  then, and `umm generate` writes a plan first.
  """
  from unified_mm.config.base import base_config  # noqa: PLC0415
  from unified_mm.data.config import default_data_config  # noqa: PLC0415

  c = base_config("ar")
  c.data = default_data_config(source="wds", image_size=RESOLUTION, seq_len=320, layout_bins=0,
                               caption_dropout=0.1, loss_on_prompt=False,
                               text_vocab_size=TEXT_VOCAB)
  c.data.doc_ratios.update(caption_to_image=0.7, image_to_caption=0.3, edit=0.0)
  c.data.image_tokenizer_dir = "runs/real/tokenizer"
  c.model = ml_collections.ConfigDict(dict(
      vocab_size=1536 + 16, d_model=128, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=32,
      mlp_dim=384, max_len=640, rope_theta=10_000.0, qk_norm=True, tie_embeddings=False,
      norm_eps=1e-5, dtype="float32", param_dtype="float32", remat="none"))
  c.loss = ml_collections.ConfigDict(dict(z_loss=1e-4, modality_weights=dict(text=1.0, image=1.0,
                                                                             special=1.0)))
  c.eval = ml_collections.ConfigDict(dict(caption_scenes=0))
  c.sample = ml_collections.ConfigDict(dict(cfg_scale=3.0, temperature=1.0, top_k=0))
  c.train.update(steps=300, batch_size=8, log_every_steps=10, eval_every_steps=100,
                 eval_batches=1)
  c.optim.update(lr=2e-3, warmup_steps=30, weight_decay=0.05)
  c.ckpt.update(save_every_steps=100)
  return c


def renderer_config():
  """Stage 3: DiT over the 32 x 32 x 4 latent (patch 2: 256 positions), conditioned
  on the 16 x 16 visual tokens and the caption; d64 x 2 blocks (~0.3M params).
  Budget: 300 steps of 8; eval/renderer/* is the held-out flow loss and
  eval/renderer_samples/ a grid of samples from the held-out tokens.
  """
  from unified_mm.config.base import base_config, mesh_config  # noqa: PLC0415

  c = base_config("renderer")
  c.model = ml_collections.ConfigDict(dict(
      latent_size=RESOLUTION // 8, latent_channels=4, patch_size=2, embed_dim=64, depth=2,
      num_heads=2, mlp_ratio=4.0, visual_codes=1000, visual_grid=RESOLUTION // 16,
      text_source="own", text_vocab=TEXT_VOCAB, text_len=48, ar_dim=0, context_depth=1,
      visual_add=True, visual_levels=CODE_LEVELS, plan_channels=0, plan_residual=0.0,
      plan_refiner_width=0, plan_refiner_depth=0, layout_len=0, layout_plan_width=0,
      layout_plan_depth=0, dtype="float32", param_dtype="float32"))
  c.loss = ml_collections.ConfigDict(dict(
      drop_prob=0.1, time_distribution="logit_normal", time_mean=0.0, time_std=1.0,
      chunk_choices=(1, 2)))
  c.data = _image_data(image_tokenizer_dir="runs/real/tokenizer", tokenizer_dir="",
                       text_vocab_size=TEXT_VOCAB, max_objects_text=4, ar_dir="",
                       layout_bins=0, layout_prob=0.0, description_prob=0.0)
  c.sample = ml_collections.ConfigDict(dict(steps=8, method="heun", cfg_scale=1.0, chunks=1,
                                            shift=1.0, start=1.0))
  c.eval = ml_collections.ConfigDict(dict(batch_size=8, grid_images=8, num_scenes=0))
  c.train.update(steps=300, batch_size=8, log_every_steps=10, eval_every_steps=100)
  c.optim.update(lr=1e-3, warmup_steps=30, min_lr_ratio=0.05, weight_decay=0.0, b2=0.99,
                 ema_decay=0.99)
  c.ckpt.update(save_every_steps=100)
  c.mesh = mesh_config(data=-1)
  return c


VARIANTS = {"tokenizer": tokenizer_config, "ar": ar_config, "renderer": renderer_config}


def get_config(arg: str = "tokenizer"):
  name, _, rest = arg.partition(",")
  config = VARIANTS[name]()
  if "runlocal" in rest.split(","):
    config.train.steps = min(config.train.steps, 20)
  return config
