"""The built-in shapes world, three stages: `tokenizer`, `ar`, `renderer_layout` (the main
job's chain, in this order; `umm demo` runs it):

    umm train --config experiments/shapes.py:tokenizer       --workdir runs/shapes/tokenizer
    umm train --config experiments/shapes.py:ar              --workdir runs/shapes/ar \
        --config.data.image_tokenizer_dir=runs/shapes/tokenizer
    umm train --config experiments/shapes.py:renderer_layout --workdir runs/shapes/renderer \
        --config.data.image_tokenizer_dir=runs/shapes/tokenizer

Other variants: `renderer` (reads the visual tokens instead of the plan),
`renderer_text_only` (the baseline), `renderer_ar_text`, and the decoder
fine-tunes `tokenizer_decoder` and `latent_decoder` of the longer chain
(docs/renderer.md). Each variant's own docstring gives its budget and expected
result. A run root (`runs/shapes`) holding tokenizer/, ar/ and renderer/ is
what `umm generate` reads.
"""

from __future__ import annotations


def tokenizer_config():
  """Stage 1: the image tokenizer (continuous latent at /4 + FSQ codes at /8) on 64x64 scenes.

      umm train --config experiments/shapes.py:tokenizer --workdir runs/shapes/tokenizer

  Budget: 2,400 steps of 32 crops of 32 x 32 px (a quarter of a scene each), 0.80M
  params; about 7 minutes on 2 cores inside `./scripts/demo`, which splits the batch
  over one XLA CPU device per core. Evaluated on whole 64 x 64 scenes. 8 x 8 =
  64 codes per image, each read from its own 8-px cell, so the transformer's image
  documents are short; the renderer draws in the /4 latent. Measured (docs/tokenizer.md,
  200 held-out scenes of <= 4 objects laid as the training ones): latent round trip
  1.00, codes (preview) 0.80. The free codes of free scenes (no cell codes,
  `data.cell_align=0`) read back 0.925-0.955 and 0.55-0.60.
  """
  import ml_collections  # noqa: PLC0415

  from unified_mm.config.base import base_config  # noqa: PLC0415

  c = base_config("tokenizer")
  # cell_code_channels=(256, 256) reads each code from its own cell's pixels (one code
  # for all background), and data.cell_align=8 lays the world's objects on those cells:
  # an object of one kind, colour and size then always has the same codes. The preview
  # of true codes reads 0.98 of benchmark-style prompts (0.73 for the free codes of
  # free scenes), and a 300-step transformer draws them: the plain path 0.13 -> 0.34
  # (docs/quality.md, "Objects on the code cells").
  c.model = ml_collections.ConfigDict(dict(
      image_size=64, channels=(32, 64, 64), num_res_blocks=1, stem_patch=2,
      latent_stage=1, latent_channels=8, code_stage=2, fsq_levels=(8, 5, 5, 5),
      latent_decoder_channels=(64, 32), preview_decoder_channels=(64, 64, 32),
      decoder_res_blocks=1, norm_groups=8, cell_code_channels=(256, 256), semantic_classes=0,
      dtype="float32", param_dtype="float32"))
  # semantic_weight > 0 (with model.semantic_classes=9) asks each code to name the
  # kind drawn in its cell (tasks/tokenizer.py; docs/quality.md, "Codes that name their kind").
  c.loss = ml_collections.ConfigDict(dict(
      l1_weight=1.0, mse_weight=1.0, code_weight=1.0, latent_reg_weight=1e-4, edge_weight=4.0,
      tip_weight=40.0, latent_noise=0.1, freeze_encoder=False, semantic_weight=0.0))
  # Crowded scenes (no room on the lattice) keep free positions: scene.place_objects.
  c.data = ml_collections.ConfigDict(dict(seed=0, resolution=64, min_objects=1, max_objects=10,
                                          cell_align=8, train_crop=32))
  c.eval = ml_collections.ConfigDict(dict(
      seed=10_007, num_scenes=200, max_objects=4, batch_size=100, analyze_scenes=200,
      grid_images=8))
  # Crops on the code cells (data.train_crop): the conv tokenizer learns the same local
  # task from a quarter of the pixels. In the main job 2,400 steps of 32 crops read back
  # latents 1.00 and codes 0.80 in 6.2-6.8 minutes, 2,000 steps of 16 whole scenes 1.00 and
  # 0.87 in 11.8 (docs/tokenizer.md, "Training on crops").
  c.train.update(steps=2400, batch_size=32, log_every_steps=50, eval_every_steps=500)
  c.optim.update(lr=2e-3, warmup_steps=50, min_lr_ratio=0.05, weight_decay=0.0, b2=0.99)
  c.ckpt.update(save_every_steps=500)
  return c


def tokenizer_decoder_config():
  """Stage 1b: the latent decoder fine-tuned for crisp output on the frozen encoder.

      umm train --config experiments/shapes.py:tokenizer_decoder --workdir runs/shapes/tokenizer_crisp

  Starts from the `tokenizer` run in `ckpt.init_from` (runs/shapes/tokenizer_base);
  encoder, FSQ codes and preview decoder stay bit-equal (frozen encoder, no
  preview loss, no weight decay), so the visual tokens and latents the other
  stages read do not move.
  The latent decoder drops MSE (whose optimum at an uncertain edge pixel is a
  blend of the two colours) and the latent noise (which trained it to hedge):
  what the renderer's output path needs is crisp pixels. Budget: 3,000 steps,
  a few minutes. Measured (docs/tokenizer.md): see "Crisp latent decoder".
  """
  c = tokenizer_config()
  c.data.train_crop = 0  # the decoder's crispness is judged on whole scenes
  c.train.batch_size = 16
  c.loss.update(freeze_encoder=True, mse_weight=0.0, code_weight=0.0, latent_noise=0.0)
  c.train.update(steps=3000, eval_every_steps=1000)
  c.optim.update(lr=5e-4, warmup_steps=50)
  c.data.seed = 1  # scenes the base run did not see
  c.ckpt.init_from = "runs/shapes/tokenizer_base"
  return c


def ar_config():
  """Stage 2: the unified transformer: caption -> plan -> image, caption -> plan,
  image -> caption and edit documents.

      umm train --config experiments/shapes.py:ar --workdir runs/shapes/ar \
          --config.data.image_tokenizer_dir=runs/shapes/tokenizer

  Budget: 750 steps of 24 x 160 tokens, d256 x 4 layers of 4 heads of 64 (4.0M
  params); about 12-14 minutes alone on 2 cores, 19.6 beside the renderer inside
  `./scripts/demo` (docs/ar.md). 300 steps teach the plan (docs/quality.md, "The
  planner"); the plain path's image codes need more (at its CFG 0.34 at 300 steps,
  0.47 at 600, 0.55 at 900: "The plain path on cell codes"; after GRPO on the codes
  0.60 at 600 and 0.62 at 750 over four seeds: "The plain-path route in the main
  job"), and the main job's 30 minutes hold about 750; captions need far longer
  (2,700 steps of /4 codes: caption match 0.94, docs/ar.md).
  """
  import ml_collections  # noqa: PLC0415

  from unified_mm.config.base import base_config  # noqa: PLC0415
  from unified_mm.data.config import default_data_config  # noqa: PLC0415

  c = base_config("ar")
  # Rows of 160: the longest document (a planned scene of 6 objects with its 64
  # codes, or an edit document's two images) is under 150 ids, so every document
  # fits (a longer one is a counted bad record) and a query reads at most 160
  # keys, where rows of 320 made it read every key before it. 4 packing bins a
  # row keep the rows about as full as before (docs/bench_train.md, "Rows as long
  # as the longest document", has the step's figures).
  # 64 bins: a pixel per bin at 64 px, so the plan fixes each box exactly and the
  # layout renderer draws it sharply (16 bins: round trip 0.29 against 0.61).
  # Half the scenes prompt-first (a GenEval-style prompt, exactly what it asks) and
  # half the documents plan-only: the planner's lessons are short, so they are most
  # of what 300 steps can teach (docs/quality.md, "The planner"). Their objects
  # are medium or large unless the prompt names "small": the drawer's misses are
  # mostly 10-px shapes read as another kind (dev seed: 0.74 -> 0.78 end to end).
  # code_levels=(8, 5, 5, 5), code_offset=512 shares the code rows through their FSQ
  # digits (models/transformer/code_digits.py): held-out image loss 3.14 -> 2.92 at
  # 300 steps, yet the plain path on the benchmark's prompts 0.18 -> 0.18 before
  # GRPO and 0.15 -> 0.13 after it, and 4-object binding 0.82 -> 0.74: off
  # (docs/quality.md, "Code rows shared through their digits"). plain_description
  # (plain documents name every object) with the tokenizer's cell codes: 0.15 ->
  # 0.19 on the dev prompts, off ("Codes read from their own cell").
  # compound_prob (a count, a size and a relation in one prompt: "two red circles
  # left of a blue square"): a quarter of the prompt-first scenes took such prompts
  # 0.20 -> 0.44 after GRPO, but position 1.00 -> 0.68 and the overall 0.97 -> 0.88
  # in the main job: off (docs/quality.md, "Compound prompts").
  # A quarter of the captions count in digits ("3 red stars"): typed that way, a
  # planner that had read none drew the asked count 0.30 of the time against 0.94,
  # this one 0.86. stop_prob (captions ending in a full stop) moved a stop's cost
  # from counting to position and the benchmark 0.98 -> 0.96: off (docs/quality.md,
  # "Prompts as people type them").
  c.data = default_data_config(seq_len=160, num_bins_factor=4, max_objects=6,
                               caption_dropout=0.1, loss_on_prompt=False, edit_turns=1,
                               layout_bins=64, layout_prob=0.5, prompt_prob=0.5, digit_prob=0.25,
                               prompt_size_weights=(0.0, 1.0, 1.0), cell_align=8,
                               plain_description=True)
  c.data.doc_ratios.update(caption_to_image=0.3, image_to_caption=0.1, edit=0.1,
                           caption_to_layout=0.5)
  c.data.image_tokenizer_dir = ""  # "": stand-in codes (smoke tests without stage 1)
  # 4 heads of 64 (2 kv heads), not 8 of 32: the same parameters and matmul FLOPs, half
  # the attention's softmax; no worse on any bar over three prompt seeds (docs/quality.md,
  # "Model shape at fixed FLOPs"). 24 rows a step, not 32: the same codes learned (held-out
  # image loss 0.371 against 0.368) for a quarter fewer tokens (docs/quality.md, "Thirty
  # minutes on a slow machine").
  c.model = ml_collections.ConfigDict(dict(
      vocab_size=1664, d_model=256, num_layers=4, num_heads=4, num_kv_heads=2, head_dim=64,
      mlp_dim=768, max_len=640, rope_theta=10_000.0, qk_norm=True, tie_embeddings=False,
      norm_eps=1e-5, dtype="float32", param_dtype="float32", remat="none",
      code_levels=(), code_offset=0))
  c.loss = ml_collections.ConfigDict(dict(
      z_loss=1e-4, modality_weights=dict(text=3.0, image=1.0, special=1.0, layout=3.0)))
  c.eval = ml_collections.ConfigDict(dict(caption_scenes=50))  # 0: no caption evaluator
  # How `umm demo`, `umm eval` and `umm generate` sample (eval/shapes_benchmark.py):
  # CFG on the codes against `BOS BOI`, fitted to the steps: 2.5 after 600 steps and GRPO
  # on the codes (the plain path 0.57-0.61 over seeds, 0.64-0.67 after 750 steps; CFG 2
  # or 3, temperature 0.6-0.8 and top-k 8 no better; before GRPO CFG 2-3 read 0.46-0.51
  # and 6 0.40), where 300 steps wanted 6 (docs/quality.md, "The plain path on cell codes" and "The plain-path route
  # in the main job"), the plan sampled at its own temperature and CFG, its boxes
  # kept apart as the world keeps its objects (scene.GAP = 2 px = 2 bins). Plan
  # temperature 0.1 rather than 0.5, after GRPO: four-object binding 0.83 -> 0.88
  # over five dev seeds ("Plan temperature"). On the lattice (data.cell_align) the
  # planner writes each box at its object's exact size: the free world's smallest
  # box (plan_min_box=12) and boxes fitted to their labels (plan_fit) then made a
  # small diamond medium and a semicircle a circle, 0.99 -> 0.79 on the dev prompts
  # ("Objects on the code cells").
  c.sample = ml_collections.ConfigDict(dict(cfg_scale=2.5, temperature=1.0, top_k=0,
                                            plan_cfg=2.0, plan_temperature=0.1, plan_gap=2,
                                            plan_min_box=1, plan_fit=False))
  c.train.update(steps=750, batch_size=24, log_every_steps=25, eval_every_steps=750,
                 eval_batches=2)
  c.optim.update(lr=2e-3, warmup_steps=50, weight_decay=0.05)
  c.ckpt.update(save_every_steps=375)
  return c


def renderer_config():
  """Stage 3: the latent diffusion renderer (DiT + rectified flow) on the tokenizer's latents.

      umm train --config experiments/shapes.py:renderer --workdir runs/shapes/renderer \
          --config.data.image_tokenizer_dir=runs/shapes/tokenizer_crisp

  Conditioned on the scene's visual tokens (cross-attention + a co-located
  direct path, FSQ-digit features, the plan latent corrected by the plan
  refiner) and its text (own text embedding; the full description half of the
  time), context dropped 10% of the time for CFG, trained on random chunk
  layouts K in {1, 2, 4}; the flow runs on the residual from the plan.
  Budget: 600 steps of 32 scenes, d128 x 4 blocks + refiner. Not the main job's
  renderer: it follows the transformer's codes, which 300 steps do not teach
  (round trip 0.47 from true codes at 600 steps against the preview's 0.60;
  docs/quality.md, "The drawer"); the main job draws the plan with
  `renderer_layout`. On the earlier /4 codes (58060ab, 2,000 steps, docs/renderer.md)
  0.928 of 500 held-out scenes read back whole.
  """
  import ml_collections  # noqa: PLC0415

  from unified_mm.config.base import base_config, mesh_config  # noqa: PLC0415

  c = base_config("renderer")
  c.model = ml_collections.ConfigDict(dict(
      latent_size=16, latent_channels=8, patch_size=2, embed_dim=128, depth=4, num_heads=4,
      mlp_ratio=4.0, visual_codes=1000, visual_grid=8, text_source="own", text_vocab=512,
      text_len=80, ar_dim=0, context_depth=1, visual_add=True, visual_levels=(8, 5, 5, 5),
      plan_channels=8, plan_residual=0.25, plan_refiner_width=64, plan_refiner_depth=2,
      layout_len=24, layout_plan_width=0, layout_plan_depth=2, dtype="float32",
      param_dtype="float32"))
  c.loss = ml_collections.ConfigDict(dict(
      plan_weight=1.0, drop_prob=0.1, time_distribution="logit_normal", time_mean=0.0, time_std=1.0,
      chunk_choices=(1, 2, 4)))
  c.data = ml_collections.ConfigDict(dict(
      seed=1, resolution=64, min_objects=1, max_objects=10, image_tokenizer_dir="",
      tokenizer_dir="", text_vocab_size=512, max_objects_text=4, ar_dir="",
      description_prob=0.5, layout_bins=64, layout_prob=0.7, cell_align=8))
  # start=0.5: sample from the half-noised plan (/8 codes: 65.6% round-trip vs 58.0% from
  # noise; /4 codes: 0.84 from the plan alone, 0.84 from 0.5, 0.83 from noise).
  c.sample = ml_collections.ConfigDict(dict(steps=8, method="heun", cfg_scale=1.0, chunks=1,
                                            shift=1.0, start=0.5))
  # layout_prob 1: held-out rows carry their plan, as planned generation gives them.
  c.eval = ml_collections.ConfigDict(dict(seed=10_007, num_scenes=100, max_objects=4,
                                          batch_size=100, description_prob=1.0, layout_prob=1.0))
  c.train.update(steps=600, batch_size=32, log_every_steps=50, eval_every_steps=300)
  c.optim.update(lr=1e-3, warmup_steps=100, min_lr_ratio=0.05, weight_decay=0.0, b2=0.99,
                 ema_decay=0.99)
  c.ckpt.update(save_every_steps=500)
  c.mesh = mesh_config(data=-1)  # the renderer's own mesh: data-parallel by default
  return c


def renderer_text_only_config():
  """Stage 3 baseline: the same renderer conditioned on the caption only (no visual
  tokens), i.e. Stable-Diffusion-style text-to-image. Same launch and budget as
  `renderer` (`experiments/shapes.py:renderer_text_only`); expected: far lower
  round-trip than with visual tokens, since captions under-specify the scene.
  """
  c = renderer_config()
  c.model.update(visual_codes=0, plan_channels=0, plan_residual=0.0, plan_refiner_width=0,
                 layout_len=0)  # text only
  c.sample.start = 1.0
  c.sample.cfg_scale = 3.0
  return c


def renderer_layout_config():
  """Stage 3, drawing from the written plan: the renderer reads the plan (object
  tokens + a canvas of their boxes on the token grid) and the text, no visual
  tokens (GLIGEN-style layout-to-image). The plan is first decoded into a
  latent (models/renderer/layout_plan.py, MSE to the true latent); the flow
  runs on the residual from it and samples from the half-noised plan.

      umm train --config experiments/shapes.py:renderer_layout --workdir runs/shapes/renderer \
          --config.data.image_tokenizer_dir=runs/shapes/tokenizer

  Every training row carries its plan (a planned prompt always has one).
  Budget: 400 steps of 32 scenes, about 5 minutes alone on 2 cores, beside the
  transformer in `./scripts/demo`. Measured (docs/quality.md, TRUE plans of 100
  held-out scenes): see "The drawer".
  """
  c = renderer_config()
  # The plan latent does most of the drawing (start 0.0, the plan alone, reads back
  # as well as 0.5): it gets the width (64 -> 128 wide: round trip 0.09 -> 0.52 at
  # 300 steps), and the DiT half the depth (4 -> 2: round trip 0.855 -> 0.845 on
  # 200 scenes of <= 6 objects, 14% fewer FLOPs a step; docs/quality.md).
  c.model.update(visual_codes=0, plan_channels=0, plan_refiner_width=0, layout_plan_width=128,
                 layout_plan_depth=3, depth=2)
  c.data.layout_prob = 1.0
  # Two Euler steps from the half-noised plan latent: the benchmark's verdicts equal
  # those of 8 Heun steps (15 evaluations) on the dev prompts, at 2 evaluations, and
  # GRPO draws every sampled plan with them (docs/quality.md, "Renderer steps").
  c.sample.update(steps=2, method="euler")
  # On the lattice 400 steps draw true plans as well as 600 (round trip 1.00 on 100
  # held-out scenes, 0.79 at 300), and the planned path reads the same (0.98-1.00 on
  # two dev seeds): the 2.3 minutes go to the transformer (docs/quality.md, "The main job").
  c.train.update(steps=400)
  c.ckpt.update(save_every_steps=200)
  return c


def renderer_ar_text_config():
  """Stage 3 variant: text context from the frozen AR transformer's hidden states over
  the caption (model.text_source="ar") instead of the renderer's own text embedding.

      umm train --config experiments/shapes.py:renderer_ar_text --workdir runs/shapes/renderer_ar \
          --config.data.image_tokenizer_dir=runs/shapes/tokenizer_crisp --config.data.ar_dir=runs/shapes/ar

  Same budget as `renderer`, plus one AR forward pass per batch in the data iterator.
  """
  c = renderer_config()
  c.model.update(text_source="ar", ar_dim=256)  # ar_config's d_model
  c.data.ar_dir = "runs/shapes/ar"
  return c


def latent_decoder_config():
  """Stage 3b: the tokenizer's latent decoder fine-tuned on the renderer's own samples.

      umm train --config experiments/shapes.py:latent_decoder --workdir runs/shapes/tokenizer \
          --config.ckpt.init_from=runs/shapes/tokenizer_crisp \
          --config.data.renderer_dir=runs/shapes/renderer

  A decoder trained on the encoder's latents blurs the renderer's (slightly
  wrong) samples at shape edges. Here it learns from (renderer sample, original
  image) pairs: a pool of 6,000 training scenes sampled once by the frozen
  renderer with its preset sampler (~3 minutes, cached in the workdir), then
  4,000 steps of 32 on the decoder alone (edge-weighted L1; encoder, codes and
  preview decoder stay bit-equal, so the workdir replaces ROOT/tokenizer).
  Measured inside `./scripts/demo` from a clean checkout of 58060ab
  (docs/renderer.md; 500 held-out scenes, TRUE tokens): 11.5 min; through
  the renderer, palette share 0.9817 (preview 0.9803), round-trip 0.928,
  PSNR 34.0 dB (preview 34.3).
  """
  import ml_collections  # noqa: PLC0415

  from unified_mm.config.base import base_config  # noqa: PLC0415

  c = base_config("latent_decoder")
  c.model = tokenizer_config().model
  c.loss = ml_collections.ConfigDict(dict(l1_weight=1.0, mse_weight=0.0, edge_weight=4.0,
                                          tip_weight=40.0))
  c.data = ml_collections.ConfigDict(dict(
      renderer_dir="runs/shapes/renderer", seed=777, pool_size=6000, min_objects=1,
      max_objects=6, description_prob=0.5))
  c.eval = ml_collections.ConfigDict(dict(seed=10_007, num_scenes=500, max_objects=4,
                                          description_prob=1.0))
  c.train.update(steps=4000, batch_size=32, log_every_steps=100, eval_every_steps=1000)
  c.optim.update(lr=5e-4, warmup_steps=50, min_lr_ratio=0.1, weight_decay=0.0, b2=0.999)
  c.ckpt.update(save_every_steps=1000, init_from="runs/shapes/tokenizer_crisp")
  return c


def ar_grpo_config():
  """Post-training of the transformer's plans with GRPO on the shapes reward
  (unified_mm/rl/): prompts from the benchmark's grammar on a seed of their own,
  8 plans per prompt, the scorer's verdict on each plan as the reward.

      umm train --config experiments/shapes.py:ar_grpo --workdir runs/shapes/ar_grpo \
          --config.ckpt.init_from=runs/shapes/ar

  Model and data come from the `ar` run it starts from (also the KL reference).
  The categories the main job gets wrong most (counting, position, binding) get
  two of the nine prompts of a step. Budget: 120 steps, about 6 minutes on 2
  cores with the answers packed (2.7 s a step; 5 s one answer per row);
  docs/rl.md has the result.
  """
  import ml_collections  # noqa: PLC0415

  from unified_mm.config.base import base_config  # noqa: PLC0415

  c = base_config("grpo")
  # The rest of `data` (and all of `model`) is the ar run's; this one may be set
  # when the tokenizer moved since (a run root copied elsewhere).
  c.data = ml_collections.ConfigDict(dict(image_tokenizer_dir=""))
  c.rl = ml_collections.ConfigDict(dict(
      group_size=8,            # plans per prompt; train.batch_size = prompts x group_size
      reward="shapes",         # or "module:function" of a Sample (unified_mm/rl/rewards.py)
      clip_eps=0.2,            # the importance ratio's clip
      kl_coef=0.04,            # beta of the k3 KL to the reference (DeepSeekMath's value)
      temperature=1.0,         # sampling the policy as it is: the ratio's denominator
      plan_cfg=1.0,
      # Rollouts plan without the box gap, smallest box and fitted boxes generation
      # uses (None: the ar run's sample.plan_gap / plan_min_box / plan_fit): trained
      # with the first two, counting fell 0.94 -> 0.80 on the dev prompts, sampled with
      # them only it keeps 0.94.
      plan_gap=-1, plan_min_box=1, plan_fit=False,
      max_objects=6,           # the ar preset's largest scene
      seq_len=112,             # a row: prompt + plan <= 27 + 6 x 13 + 2 here
      pack_rows=32,            # the 72 answers (33-41 positions each) packed in 32 rows; 0: 72 rows
      render=True,             # draw each plan (the run root's renderer) and score the image
      answer="plan",           # or "codes": the plain path's image codes, drawn by the preview
      code_cfg=1.0,            # CFG of sampled code answers (1: the policy as it is)
      run_root="",             # "": the directory holding ckpt.init_from
      prompt_seed=31_337,      # never an evaluation seed (checked)
      # compound: prompts with a count, a size and a relation at once (rl/prompts.py).
      category_weights=dict(single=1.0, two=1.0, counting=2.0, colours=1.0, position=2.0,
                            binding=2.0, compound=0.0),
      counting=(2, 3, 4), binding=(2, 3, 4, 5, 6),
      digit_prob=0.25, stop_prob=0.0,  # prompts typed as the ar preset's captions are
      eval_prompts=25, eval_seed=4_243,  # the periodic plan evaluator (plan_evaluator.py)
  ))
  # 9 prompts x 8 plans: the category cycle above, once per step.
  c.train.update(steps=120, batch_size=72, log_every_steps=10, eval_every_steps=40)
  c.optim.update(lr=1e-4, warmup_steps=10, decay="constant", weight_decay=0.0, clip_norm=1.0)
  c.ckpt.update(save_every_steps=40)
  return c


def ar_grpo_codes_config():
  """The main job's post-training: GRPO on the plain path's image codes (the answer
  after `BOS prompt`, drawn by the tokenizer's preview decoder and scored), not on
  the plans: `ar_grpo` with `rl.answer=codes`.

      umm train --config experiments/shapes.py:ar_grpo_codes --workdir runs/shapes/ar_rl \
          --config.ckpt.init_from=runs/shapes/ar

  Budget: 60 steps, about 4 minutes on 2 cores (72 answers a step, packed in 18
  rows). On the 600-step transformer 40 steps took the plain path from 0.46-0.48
  to 0.56-0.61 at code CFG 2.5 (20: 0.50-0.58), and 80 or 120 were no better; on
  the main job's transformer of 24 rows and crop-trained codes 60 read 0.617 /
  0.623 / 0.630 on three prompt seeds against 0.597 / 0.603 / 0.543 for 40
  (docs/quality.md, "The main job"). Its planned path needs no GRPO on plans
  (docs/quality.md, "The plain-path route in the main job").
  """
  c = ar_grpo_config()
  # An answer: BOS, a prompt (<= 25 ids), BOI, 64 codes, EOI; 18 rows of 352 held the 72
  # of each of 400 steps (the longest 92 positions, 75 on average: 85% of the rows).
  c.rl.update(answer="codes", seq_len=352, pack_rows=18, eval_prompts=0)
  # No KL term, so no reference pass (1 s of a 5-s step): over 40 steps at lr 1e-4 it
  # held nothing back, the plain path 0.596 against 0.584 at 0.04 over four dev seeds
  # (docs/quality.md, "The plain-path route in the main job").
  c.rl.kl_coef = 0.0
  c.train.update(steps=60, eval_every_steps=0)
  c.ckpt.update(save_every_steps=30)
  return c


VARIANTS = {"tokenizer": tokenizer_config, "tokenizer_decoder": tokenizer_decoder_config,
            "latent_decoder": latent_decoder_config, "ar": ar_config, "renderer": renderer_config,
            "renderer_text_only": renderer_text_only_config,
            "renderer_layout": renderer_layout_config,
            "renderer_ar_text": renderer_ar_text_config, "ar_grpo": ar_grpo_config,
            "ar_grpo_codes": ar_grpo_codes_config}


def get_config(arg: str = "tokenizer"):
  name, _, rest = arg.partition(",")
  config = VARIANTS[name]()
  if rest == "runlocal" or "runlocal" in rest.split(","):
    config.train.steps = min(config.train.steps, 20)
  return config
