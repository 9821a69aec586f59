"""experiments/images.py: parameter counts (jax.eval_shape) vs the papers, the
renderer's FLOP counter vs the DiT paper and XLA, and the pod presets plan."""

import math

import jax
import jax.numpy as jnp
import pytest
from flax import nnx

from unified_mm.config.loading import load_config
from unified_mm.models.image_tokenizer.autoencoder import TokenizerAutoencoder
from unified_mm.models.renderer.flops import forward_flops_per_image
from unified_mm.models.renderer.model import Renderer
from unified_mm.plan.hardware import parse_topology
from unified_mm.plan.planner import make_plan


def _abstract(config):
  cls = TokenizerAutoencoder if config.stage == "tokenizer" else Renderer
  with nnx.use_eager_sharding(False):  # nothing allocated, no mesh needed
    return nnx.eval_shape(lambda: cls(**config.model, rngs=nnx.Rngs(0)))


def _count(module) -> int:
  return sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(module, nnx.Param)))


def llamagen_vq16_exact() -> int:
  """LlamaGen's VQ_16 (tokenizer/tokenizer_image/vq_model.py), written independently:
  GroupNorm-affine ResnetBlocks with 1x1 shortcuts, AttnBlocks at the lowest level
  and in the mid blocks, 3x3 strided/upsampling convs, quant convs, 16384 x 8 codebook."""
  conv = lambda i, o, k: i * o * k * k + o
  res = lambda i, o: 2 * i + conv(i, o, 3) + 2 * o + conv(o, o, 3) + (conv(i, o, 1) if i != o else 0)
  attn = lambda c: 2 * c + 4 * conv(c, c, 1)
  ch, mult, z = 128, (1, 1, 2, 2, 4), 256
  enc, c_in = conv(3, ch, 3), ch
  for level, m in enumerate(mult):
    for _ in range(2):
      enc, c_in = enc + res(c_in, ch * m) + (attn(ch * m) if level == 4 else 0), ch * m
    enc += conv(c_in, c_in, 3) if level < 4 else 0
  enc += 2 * res(c_in, c_in) + attn(c_in) + 2 * c_in + conv(c_in, z, 3)
  dec = conv(z, c_in, 3) + 2 * res(c_in, c_in) + attn(c_in)
  for level in reversed(range(5)):
    for _ in range(3):
      dec, c_in = dec + res(c_in, ch * mult[level]) + (attn(ch * mult[level]) if level == 4 else 0), ch * mult[level]
    dec += conv(c_in, c_in, 3) if level else 0
  dec += 2 * c_in + conv(c_in, 3, 3)
  return enc + dec + conv(z, 8, 1) + conv(8, z, 1) + 16384 * 8


def dit_exact(d=1152, depth=28, patch=2, channels=4, out_channels=8, classes=1001, tokens=256):
  """DiT's models.py count, as its train.py prints it (pos_embed included)."""
  lin = lambda i, o: i * o + o
  block = lin(d, 3 * d) + lin(d, d) + lin(d, 4 * d) + lin(4 * d, d) + lin(d, 6 * d)
  final = lin(d, 2 * d) + lin(d, patch * patch * out_channels)
  return (lin(patch * patch * channels, d) + lin(256, d) + lin(d, d) + classes * d
          + tokens * d + depth * block + final)


def pixart_exact(d=1152, depth=28, patch=2, channels=4, out_channels=8, text_dim=4096):
  """PixArt-α's PixArt_XL_2 (without T5): adaLN-single t_block, caption MLP, per-block
  self + cross attention (with biases), MLP and a [6, D] table, T2I final layer."""
  lin = lambda i, o: i * o + o
  block = (lin(d, 3 * d) + lin(d, d)) + (lin(d, d) + lin(d, 2 * d) + lin(d, d)) \
      + lin(d, 4 * d) + lin(4 * d, d) + 6 * d
  return (lin(patch * patch * channels, d) + lin(256, d) + lin(d, d) + lin(d, 6 * d)
          + lin(text_dim, d) + lin(d, d) + depth * block + 2 * d
          + lin(d, patch * patch * out_channels))


def test_paper_counts_written_out():
  assert llamagen_vq16_exact() == 71_883_403   # "72M" (LlamaGen, Table 2)
  assert dit_exact() == 675_129_632            # "675M" (DiT, Table 1)
  assert pixart_exact() == 610_856_096         # "611M" (PixArt-α)


def test_tokenizer_vq16_within_1_percent():
  n = _count(_abstract(load_config("experiments/images.py:tokenizer_vq16")))
  assert abs(n - llamagen_vq16_exact()) / llamagen_vq16_exact() < 0.01, n


@pytest.mark.parametrize("variant,paper", [("renderer_dit_xl2", dit_exact()),
                                           ("renderer_pixart_xl2", pixart_exact())])
def test_renderer_within_1_percent_without_its_code_table(variant, paper):
  """The visual-token table (codebook x D) is counted apart: it stands where DiT's
  class table / PixArt's T5 stand and its size is the tokenizer's, not the DiT's."""
  model = _abstract(load_config(f"experiments/images.py:{variant}"))
  n = _count(model) - _count(model.context.code_embed)
  assert abs(n - paper) / paper < 0.01, (variant, n, paper)


@pytest.mark.parametrize("size,gflops", [("b", 23.01), ("l", 80.71), ("xl", 118.64)])
def test_flop_counter_reproduces_the_dit_paper(size, gflops):
  """DiT's Gflops are multiply-accumulates per 256-px image, forward."""
  model = load_config(f"experiments/images.py:renderer_dit_{size}2").model
  assert forward_flops_per_image(model) / 2e9 == pytest.approx(gflops, rel=0.02)


@pytest.mark.parametrize("variant", ["renderer_dit_b2", "renderer_pixart_xl2"])
def test_flop_counter_agrees_with_xla(variant):
  """XLA counts every op (norms, softmax, ...); ours the matmuls: XLA a few percent
  above, never below. Unrolled: XLA counts a scanned body once, not per layer."""
  kw = dict(load_config(f"experiments/images.py:{variant},runlocal").model, scan_layers=False)
  with nnx.use_eager_sharding(False):
    model = nnx.eval_shape(lambda: Renderer(**kw, rngs=nnx.Rngs(0)))
  b = 2
  s = jax.ShapeDtypeStruct
  inputs = dict(codes=s((b, kw["visual_grid"], kw["visual_grid"]), jnp.int32))
  if kw["text_source"] == "own":
    inputs |= dict(text_ids=s((b, kw["text_len"]), jnp.int32),
                   text_mask=s((b, kw["text_len"]), jnp.bool_))
  x = s((b, kw["latent_size"], kw["latent_size"], kw["latent_channels"]), jnp.float32)
  cost = jax.jit(lambda m, x, t, inputs: m(x, t, **inputs)).lower(
      model, x, s((b,), jnp.float32), inputs).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  ratio = cost["flops"] / (b * forward_flops_per_image(kw))
  assert 1.0 <= ratio < 1.1, ratio


@pytest.mark.parametrize("variant", ["tokenizer_vq16", "renderer_dit_xl2", "renderer_pixart_xl2"])
def test_image_pod_presets_plan(variant):
  config = load_config(f"experiments/pods.py:{variant}@v5p-64")
  report = make_plan(config, variant, parse_topology("v5p-64"), compile_aot=False)
  assert report.fits and report.params == _count(_abstract(config))
  if config.stage == "renderer":
    assert report.mesh["fsdp"] == 8 and report.flops_per_step > 0
    assert report.tokens_per_step == config.train.batch_size * 256
  else:
    assert report.mesh["data"] == 32
