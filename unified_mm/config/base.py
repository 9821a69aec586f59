"""Shared config sections; presets in `experiments/` are small deltas on these.

Every stage config has the same top-level shape:

  stage   which task the trainer runs ("lm", "ar", "tokenizer", "renderer", "latent_decoder")
  seed    the run's seed; step RNG is fold_in(seed, step)
  model   keyword arguments of the stage's model constructor
  loss    keyword arguments of the stage's loss
  data    the stage's data source and pipeline
  train / optim / ckpt   trainer, optimiser and checkpoint settings
  mesh / rules           the device mesh and the logical->mesh axis rules
"""

from __future__ import annotations

import ml_collections

# Logical axis -> mesh axes. FSDP shards the `embed` dimension of weights;
# tensor parallelism shards heads and the MLP; batches go over data and fsdp.
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("length", "sequence"),
    ("cache_length", None),
    ("embed", "fsdp"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("vocab", "tensor"),
    ("layers", None),
    ("height", None),
    ("width", None),
    ("channels", None),
    ("conv_in", None),
    ("conv_out", "tensor"),
    ("kernel_h", None),
    ("kernel_w", None),
    ("context", None),
    ("patch", None),
)


def mesh_config(data: int = -1, fsdp: int = 1, tensor: int = 1, sequence: int = 1,
                dcn_data: int = 1) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      data=data, fsdp=fsdp, tensor=tensor, sequence=sequence, dcn_data=dcn_data))


def train_config(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(dict(
      steps=100,
      batch_size=8,            # global, across all hosts
      grad_accum_steps=1,      # micro-batches per optimiser step
      log_every_steps=10,
      eval_every_steps=0,      # 0: no periodic eval
      eval_batches=4,
      remat="none",            # "none" | "full" | "dots" (see models' remat policies)
      progress=True,
  ))
  c.update(overrides)
  return c


def optim_config(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(dict(
      lr=3e-4,
      warmup_steps=10,
      decay="cosine",          # "cosine" | "linear" | "constant"
      min_lr_ratio=0.1,
      weight_decay=0.1,
      decay_embeddings=False,  # norms/biases never decay; embeddings by choice
      b1=0.9,
      b2=0.95,
      eps=1e-8,
      clip_norm=1.0,
      ema_decay=0.0,           # 0: no EMA of params
  ))
  c.update(overrides)
  return c


def ckpt_config(**overrides) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict(dict(
      save_every_steps=100,
      max_to_keep=3,
      keep_best_metric="",     # e.g. "eval/lm/loss"; "" keeps only the last N
      keep_best_mode="min",
      init_from="",            # a workdir whose params warm-start this run
      init_partial=False,      # True: params init_from lacks or shapes otherwise start fresh
      async_save=True,
  ))
  c.update(overrides)
  return c


def base_config(stage: str) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.stage = stage
  c.seed = 0
  c.model = ml_collections.ConfigDict()
  c.loss = ml_collections.ConfigDict()
  c.data = ml_collections.ConfigDict()
  c.train = train_config()
  c.optim = optim_config()
  c.ckpt = ckpt_config()
  c.mesh = mesh_config()
  c.rules = [list(r) for r in DEFAULT_RULES]
  return c
