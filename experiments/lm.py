"""The unified transformer on the built-in synthetic token stream (`stage=lm`).

    umm train --config experiments/lm.py:tiny --workdir runs/lm_tiny
    umm bench train --config experiments/lm.py:ref
    umm plan --config experiments/lm.py:llamagen_gpt_xl

Variants (`get_config("<name>[,runlocal]")`):

  tiny      CPU, d128 x 4 layers, vocab 512, seq 128, batch 16, 200 steps:
            0.2-0.6 s/step on 2 (shared) cores, 1-3 minutes in all. Expected
            (measured): train/loss 6.3 at step 10 -> ~2.2 at step 200,
            eval/lm/loss ~2.3, eval/lm/image/accuracy ~0.47 (the grammar's
            floor: text ln 4 = 1.39 per word, image codes ln 2, copies learnable).
  ref       the benchmark shape: vocab 8192, d512 x 8 layers, 8 heads of 64,
            MLP 2048, seq 512, batch 8, f32 (~42M params, ~1.0 TFLOP/step).
            `umm bench train` on it measured MFU 0.53-0.59 against the same
            process's XLA f32 matmul under a load average of 8-11 (target
            0.60; see docs/bench_train.md).
  llamagen_gpt_{b,l,xl,xxl,3b}   LlamaGen (Sun et al. 2024) GPT shapes, 111M /
            343M / 775M / 1.4B / 3.1B, vocab 16384, seq 256.
  chameleon_7b   Chameleon-7B shape (Llama-2-7B body, vocab 65536, QK-norm), seq 4096.
  chameleon_34b  Chameleon-34B shape (8192 x 48, GQA 64/8), 34.3B.
  unified_70b    a 70B-class model: Llama-2-70B body, Chameleon's vocab and QK-norm, 69.5B.

`runlocal` shrinks any variant to a CPU-sized model, batch and step count
(vocab and grammar unchanged) so its whole pipeline can be smoke-tested here.

Parameter counts (tests/experiments/test_experiments_lm_presets.py checks
them with jax.eval_shape, within 1% of the published figure):
LlamaGen counts include its class embedding (1001 x D, c2i) or, for GPT-3B,
its caption projection MLP (2048->D->D, t2i). The unified model has neither:
its conditioning is ordinary tokens of the one vocabulary, so our count is
LlamaGen's minus that table (-0.69% B, -0.30% L, -0.17% XL, -0.11% XXL,
-0.54% 3B vs their exact counts).
"""

from __future__ import annotations

import ml_collections

from unified_mm.config.base import base_config, mesh_config


def find_multiple(n: int, k: int) -> int:
  return n if n % k == 0 else n + k - n % k


def llama_mlp_dim(d_model: int, multiple_of: int = 256, ffn_dim_multiplier: float | None = None
                  ) -> int:
  """SwiGLU width as in Llama / LlamaGen FeedForward: 2/3 * 4D, rounded up."""
  hidden = int(2 * (4 * d_model) / 3)
  if ffn_dim_multiplier is not None:
    hidden = int(ffn_dim_multiplier * hidden)
  return find_multiple(hidden, multiple_of)


def model_config(*, vocab_size: int, d_model: int, num_layers: int, num_heads: int,
                 num_kv_heads: int | None = None, head_dim: int | None = None,
                 mlp_dim: int | None = None, max_len: int = 2048, **extra):
  c = ml_collections.ConfigDict(dict(
      vocab_size=vocab_size, d_model=d_model, num_layers=num_layers, num_heads=num_heads,
      num_kv_heads=num_kv_heads or num_heads, head_dim=head_dim or d_model // num_heads,
      mlp_dim=mlp_dim or llama_mlp_dim(d_model), max_len=max_len, rope_theta=10_000.0,
      qk_norm=True, tie_embeddings=False, norm_eps=1e-5, dtype="float32",
      param_dtype="float32", remat="none", scan_layers=False, attention="xla"))
  c.update(extra)
  return c


def data_config(*, text_size: int, image_codes: int, seq_len: int, grid_count: int = 16):
  return ml_collections.ConfigDict(dict(
      text_size=text_size, image_codes=image_codes, seq_len=seq_len, grid_count=grid_count,
      branching=4, mix=(0.4, 0.4, 0.2), seed=0))


def lm_config(model, data, **train) -> ml_collections.ConfigDict:
  c = base_config("lm")
  c.model = model
  c.data = data
  c.loss = ml_collections.ConfigDict(dict(z_loss=1e-4))
  c.train.update(train)
  return c


def tiny():
  c = lm_config(
      model_config(vocab_size=512, d_model=128, num_layers=4, num_heads=4, num_kv_heads=2,
                   head_dim=32, mlp_dim=512, max_len=256),
      data_config(text_size=352, image_codes=128, seq_len=128),
      steps=200, batch_size=16, log_every_steps=10, eval_every_steps=100, eval_batches=2)
  c.optim.update(lr=3e-3, warmup_steps=20)
  c.ckpt.save_every_steps = 100
  return c


def ref():
  c = lm_config(
      model_config(vocab_size=8192, d_model=512, num_layers=8, num_heads=8, num_kv_heads=8,
                   head_dim=64, mlp_dim=2048, max_len=512),
      data_config(text_size=6016, image_codes=2048, seq_len=512, grid_count=64),
      steps=1000, batch_size=8, log_every_steps=10)
  c.optim.update(lr=1e-3, warmup_steps=50)
  return c


# Published-scale models scan their layer stack (compile time independent of
# depth) and pick the attention kernel by backend (splash on TPU, cuDNN on GPU
# where it applies, XLA elsewhere); the CPU presets above keep the unrolled
# stack and the XLA path, the layout of their checkpoints and measured figures.
PUBLISHED_SCALE = dict(scan_layers=True, attention="auto")


# LlamaGen, FoundationVision/LlamaGen autoregressive/models/gpt.py: GPT_B..GPT_3B,
# ModelArgs(vocab_size=16384, multiple_of=256, n_kv_head=n_head, norm_eps=1e-5,
# rope_base=10000), untied tok_embeddings / output. Data vocab: 1000 "class
# words" + 15360 codes + specials = 16384 exactly.
LLAMAGEN = {  # name: (dim, n_layer, n_head, published params)
    "b": (768, 12, 12, 111e6),
    "l": (1024, 24, 16, 343e6),
    "xl": (1280, 36, 20, 775e6),
    "xxl": (1536, 48, 24, 1.4e9),
    "3b": (3200, 24, 32, 3.1e9),
}
LLAMAGEN_MESH = {"b": dict(data=-1), "l": dict(data=1, fsdp=-1), "xl": dict(data=1, fsdp=-1),
                 "xxl": dict(data=1, fsdp=-1), "3b": dict(data=1, fsdp=-1, tensor=4)}


def llamagen(size: str):
  d, layers, heads, _ = LLAMAGEN[size]
  c = lm_config(model_config(vocab_size=16384, d_model=d, num_layers=layers, num_heads=heads,
                             max_len=2048, dtype="bfloat16", **PUBLISHED_SCALE),
                data_config(text_size=1000, image_codes=15360, seq_len=256, grid_count=255),
                steps=300_000, batch_size=256, log_every_steps=100)
  c.optim.update(lr=1e-4, warmup_steps=0, decay="constant", weight_decay=0.05, b2=0.95)
  c.mesh = mesh_config(**LLAMAGEN_MESH[size])
  c.ckpt.save_every_steps = 5000
  return c


# Chameleon-7B (Chameleon Team 2024; HF ChameleonConfig defaults): Llama-2-7B
# body (4096 x 32 layers, 32 heads, MLP 11008, no GQA), vocab 65536 of which
# 8192 are image codes, QK-norm. Published: 7B (7.0B here). Chameleon's QK
# LayerNorm has per-head weight and bias (~0.5M params in all); ours is RMSNorm
# over head_dim shared across heads (8K in all): -0.007%.
CHAMELEON_7B_PARAMS = 7.0e9


def chameleon(d_model: int, num_layers: int, num_heads: int, num_kv_heads: int, mlp_dim: int):
  """The Chameleon recipe (vocab 65536 with 8192 image codes, QK-norm, seq 4096,
  4M-token batches) on a Llama-2-shaped body."""
  c = lm_config(model_config(vocab_size=65536, d_model=d_model, num_layers=num_layers,
                             num_heads=num_heads, num_kv_heads=num_kv_heads, mlp_dim=mlp_dim,
                             max_len=4096, dtype="bfloat16", **PUBLISHED_SCALE),
                data_config(text_size=57216, image_codes=8192, seq_len=4096, grid_count=1024),
                steps=100_000, batch_size=1024, log_every_steps=100)
  c.optim.update(lr=1e-4, warmup_steps=4000, weight_decay=0.1, b2=0.95, eps=1e-5)
  c.loss.z_loss = 1e-5
  c.mesh = mesh_config(data=1, fsdp=-1, tensor=8)
  c.ckpt.save_every_steps = 2000
  return c


def chameleon_7b():
  return chameleon(4096, 32, 32, 32, 11008)


# Chameleon-34B (HF facebook/chameleon-30b config.json: 8192 x 48 layers, 64 heads,
# 8 KV heads, MLP 22016). Published: 34B (34.3B here).
def chameleon_34b():
  return chameleon(8192, 48, 64, 8, 22016)


# A 70B-class unified model: Llama-2-70B's body (Touvron et al. 2023: 8192 x 80
# layers, 64 heads, 8 KV heads, MLP 28672; 68.98B with its 32000-word vocab) with
# Chameleon's 65536 vocab and QK-norm: 69.5B (+0.55B of embedding and output rows).
UNIFIED_70B_PARAMS = 68.98e9 + 2 * (65536 - 32000) * 8192


def unified_70b():
  return chameleon(8192, 80, 64, 8, 28672)


VARIANTS = {"tiny": tiny, "ref": ref, "chameleon_7b": chameleon_7b,
            "chameleon_34b": chameleon_34b, "unified_70b": unified_70b}
VARIANTS.update({f"llamagen_gpt_{s}": (lambda s=s: llamagen(s)) for s in LLAMAGEN})


def runlocal(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """CPU-sized: tiny model width/depth, short rows, few steps, default mesh."""
  c.model.update(d_model=128, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=32,
                 mlp_dim=512, dtype="float32", max_len=256, attention="xla")
  c.data.update(seq_len=128, grid_count=min(c.data.grid_count, 16))
  c.train.update(steps=20, batch_size=8, log_every_steps=5)
  c.mesh = mesh_config()
  c.ckpt.save_every_steps = 10
  return c


def get_config(arg: str = "tiny") -> ml_collections.ConfigDict:
  name, *flags = arg.split(",")
  config = VARIANTS[name]()
  if "runlocal" in flags:
    config = runlocal(config)
  return config
