"""`model.attention`: the kernel each backend gets, config errors before compiling,
and splash attention (Pallas interpret mode on CPU) == the XLA path with packed
segment ids and GQA, on one device and under shard_map on 8."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType
from transformer_factories import TINY, like

from unified_mm.config.loading import ConfigError
from unified_mm.models.transformer import Transformer
from unified_mm.models.transformer.attention import attention_mask, dot_product_attention
from unified_mm.models.transformer.attention_kernels import (resolve_kernel, splash_attention,
                                                             target_platform)
from unified_mm.parallel.sharding import activate


def _resolve(kind, platform, dtype="bfloat16", head_dim=64, seq_len=256, packed=False):
  return resolve_kernel(kind, dtype=jnp.dtype(dtype), head_dim=head_dim, seq_len=seq_len,
                        packed=packed, platform=platform)


def test_auto_picks_by_backend():
  assert target_platform() == "cpu"
  assert _resolve("auto", "cpu") == "xla"
  assert _resolve("auto", "tpu") == "splash"
  assert _resolve("auto", "tpu", seq_len=100) == "xla"          # splash needs T % 128 == 0
  assert _resolve("auto", "gpu") == "cudnn"
  assert _resolve("auto", "gpu", packed=True) == "xla"           # segment ids: no cuDNN mask
  assert _resolve("auto", "gpu", dtype="float32") == "xla"
  assert _resolve("xla", "tpu") == "xla"


@pytest.mark.parametrize("kind,platform,kw,words", [
    ("splash", "cpu", {}, "TPUs only"),
    ("splash", "gpu", {}, "TPUs only"),
    ("splash", "tpu", dict(seq_len=200), "multiple of 128"),
    ("cudnn", "cpu", {}, "NVIDIA GPUs only"),
    ("cudnn", "tpu", {}, "NVIDIA GPUs only"),
    ("cudnn", "gpu", dict(packed=True), "segment ids"),
    ("cudnn", "gpu", dict(dtype="float32"), "bfloat16 or float16"),
    ("cudnn", "gpu", dict(head_dim=12), "head_dim"),
])
def test_impossible_kernels_are_config_errors(kind, platform, kw, words):
  with pytest.raises(ConfigError, match="model.attention") as e:
    _resolve(kind, platform, **kw)
  assert words in str(e.value)


def test_model_uses_xla_on_cpu_and_refuses_tpu_gpu_kernels(tiny_model):
  tokens = jax.random.randint(jax.random.key(0), (2, 16), 0, TINY["vocab_size"])
  forward = jax.jit(lambda m, t: m(t))
  np.testing.assert_array_equal(forward(like(tiny_model, attention="auto"), tokens),
                                forward(tiny_model, tokens))
  for kind in ("splash", "cudnn"):
    model = like(tiny_model, attention=kind, dtype="bfloat16")
    with pytest.raises(ConfigError, match=f"model.attention='{kind}'"):
      jax.jit(lambda m, t: m(t)).lower(model, tokens)  # raised while tracing: before compiling


def test_static_cudnn_and_unknown_kernels_fail_at_construction():
  from flax import nnx
  build = lambda **kw: nnx.eval_shape(lambda: Transformer(**{**TINY, **kw}, rngs=nnx.Rngs(0)))
  with pytest.raises(ConfigError, match="model.attention='cudnn'.*bfloat16"):
    build(attention="cudnn")  # f32
  with pytest.raises(ConfigError, match="model.attention='flash'"):
    build(attention="flash")
  build(attention="cudnn", dtype="bfloat16")  # head_dim 8, bf16: possible on a GPU


def _qkv_segments(b=2, t=256, n=4, k=2, h=64):
  keys = jax.random.split(jax.random.key(0), 3)
  q = jax.random.normal(keys[0], (b, t, n, h)) * h ** -0.5
  kk, v = (jax.random.normal(x, (b, t, k, h)) for x in keys[1:])
  # Two documents and tail padding per row, at different offsets per row.
  rows = [np.repeat([1, 2, 0], [100, 140, 16]), np.repeat([1, 2, 0], [37, 203, 16])]
  seg = jnp.asarray([rows[i % 2] for i in range(b)])
  return q, kk, v, seg


def _xla(q, k, v, seg):
  idx = jnp.broadcast_to(jnp.arange(q.shape[1]), seg.shape)
  mask = attention_mask(seg, seg, idx, idx)
  # dot_product_attention scales q itself; undo it to feed the same (pre-scaled) q.
  return dot_product_attention(q * q.shape[-1] ** 0.5, k, v, mask)


def test_splash_interpret_equals_xla_with_segments_and_gqa():
  q, k, v, seg = _qkv_segments()
  splash = jax.jit(lambda *a: splash_attention(*a, interpret=True))(q, k, v, seg)
  np.testing.assert_allclose(splash, _xla(q, k, v, seg), atol=2e-5, rtol=2e-5)


def test_splash_under_shard_map_equals_xla():
  if jax.device_count() < 8:
    pytest.skip("needs 8 (fake) devices")
  q, k, v, seg = _qkv_segments(b=4)
  mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"), axis_types=(AxisType.Auto,) * 3)
  rules = (("batch", ("data", "fsdp")), ("heads", "tensor"), ("kv_heads", "tensor"))
  with activate(mesh, rules):
    out = jax.jit(lambda *a: splash_attention(*a, interpret=True))(q, k, v, seg)
  np.testing.assert_allclose(out, _xla(q, k, v, seg), atol=2e-5, rtol=2e-5)
