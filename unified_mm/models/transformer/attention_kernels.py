"""Attention kernels by config: `model.attention` = auto | xla | splash | cudnn.

  xla     the einsum + softmax path of attention.py; every backend, any mask.
  splash  TPU splash attention (Pallas, jax.experimental.pallas.ops.tpu),
          causal by row index within segment ids (packed rows), GQA without
          repeating kv heads, run per shard under `shard_map` over the mesh.
  cudnn   GPU cuDNN flash attention (`jax.nn.dot_product_attention(
          implementation="cudnn")`): bf16/fp16, head_dim a multiple of 8 and
          <= 128, one document per row (no segment ids: it has no packed mask).
  auto    splash on TPU, cudnn on GPU where its constraints hold, else xla.

The target platform is the mesh's (so an AOT compile for a TPU topology on a
CPU host picks the TPU kernel), else the default backend. An impossible choice
raises `ConfigError` naming `model.attention` while the step is traced, which
is before anything compiles. KV-cache decoding always uses the XLA path.

Dimension letters: B batch, T query length, S key length, N query heads,
K kv heads, H head dim.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax.core import spmd as core_spmd

from unified_mm.config.loading import ConfigError
from unified_mm.parallel.sharding import logical_to_spec

KERNELS = ("auto", "xla", "splash", "cudnn")
_GPU = ("gpu", "cuda")
_CUDNN_DTYPES = (jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16))
_CUDNN_MAX_HEAD_DIM = 128   # 256 on Hopper and later; 128 holds everywhere
_SPLASH_BLOCKS = (512, 256, 128)


def check_kernel(kind: str, *, dtype, head_dim: int) -> None:
  """Construction-time checks (platform-independent)."""
  if kind not in KERNELS:
    raise ConfigError(f"model.attention={kind!r}: expected one of {', '.join(KERNELS)}")
  if kind == "cudnn":
    problem = _cudnn_problem(dtype, head_dim)
    if problem:
      raise ConfigError(f"model.attention='cudnn': {problem} (use 'xla' or 'auto')")


def target_platform() -> str:
  """'tpu', 'gpu', 'cpu': the platform of the active mesh, else JAX's default backend."""
  mesh = jax.sharding.get_abstract_mesh()
  device = None if mesh.empty else getattr(mesh, "abstract_device", None)
  platform = device.platform if device is not None else jax.default_backend()
  return "gpu" if platform in _GPU else platform


def resolve_kernel(kind: str, *, dtype, head_dim: int, seq_len: int, packed: bool,
                   platform: str | None = None) -> str:
  """The kernel a full-sequence forward uses: 'xla', 'splash' or 'cudnn'."""
  platform = platform or target_platform()
  splash_problem = _splash_problem(seq_len) if platform == "tpu" else (
      f"it runs on TPUs only, and this step targets {platform}")
  cudnn_problem = _cudnn_problem(dtype, head_dim) if platform == "gpu" else (
      f"it runs on NVIDIA GPUs only, and this step targets {platform}")
  if not cudnn_problem and packed:
    cudnn_problem = ("cuDNN has no packed-row mask, and the rows carry segment ids "
                     "(one document per row only)")
  if kind == "auto":
    if platform == "tpu" and not splash_problem:
      return "splash"
    if platform == "gpu" and not cudnn_problem:
      return "cudnn"
    return "xla"
  if kind == "splash" and splash_problem:
    raise ConfigError(f"model.attention='splash': {splash_problem} (use 'auto' or 'xla')")
  if kind == "cudnn" and cudnn_problem:
    raise ConfigError(f"model.attention='cudnn': {cudnn_problem} (use 'auto' or 'xla')")
  return kind


def _cudnn_problem(dtype, head_dim: int) -> str:
  if jnp.dtype(dtype) not in _CUDNN_DTYPES:
    return f"needs model.dtype bfloat16 or float16, not {jnp.dtype(dtype).name}"
  if head_dim % 8 or head_dim > _CUDNN_MAX_HEAD_DIM:
    return f"needs head_dim a multiple of 8 and <= {_CUDNN_MAX_HEAD_DIM}, not {head_dim}"
  return ""


def _splash_problem(seq_len: int) -> str:
  if seq_len % _SPLASH_BLOCKS[-1]:
    return f"needs a sequence length that is a multiple of 128, not {seq_len}"
  return ""


# -- cuDNN ------------------------------------------------------------------------


def cudnn_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
  """q [B,T,N,H] (unscaled), k/v [B,S,K,H] -> [B,T,N,H]; causal, one document per row."""
  return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation="cudnn")


# -- splash -----------------------------------------------------------------------


def splash_attention(q: jax.Array, k: jax.Array, v: jax.Array, segment_ids: jax.Array, *,
                     interpret: bool = False) -> jax.Array:
  """q [B,T,N,H] (already scaled), k/v [B,T,K,H], segment_ids [B,T] -> [B,T,N,H].

  Causal by row index and only within equal segment ids, as `attention_mask`.
  Under a mesh the kernel runs per shard (`shard_map`): batch and heads are
  split as the logical rules say (kv heads with their query heads), the
  sequence is whole on every device.
  """
  local = functools.partial(_splash_local, interpret=interpret)
  mesh = jax.sharding.get_abstract_mesh()
  rules = core_spmd.get_logical_axis_rules()
  if mesh.empty or not rules:
    return local(q, k, v, segment_ids)
  q_spec = logical_to_spec(("batch", None, "heads", None), rules)
  kv_spec = logical_to_spec(("batch", None, "kv_heads", None), rules)
  seg_spec = logical_to_spec(("batch", None), rules)
  return jax.shard_map(local, in_specs=(q_spec, kv_spec, kv_spec, seg_spec),
                       out_specs=q_spec, check_vma=False)(q, k, v, segment_ids)


def _block(length: int) -> int:
  return next(b for b in _SPLASH_BLOCKS if length % b == 0)


@functools.lru_cache(maxsize=None)
def _splash_kernel(num_heads: int, q_len: int, kv_len: int, interpret: bool):
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as sk
  from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as sm

  mask = sm.MultiHeadMask([sm.CausalMask((q_len, kv_len)) for _ in range(num_heads)])
  bq, bkv = _block(q_len), _block(kv_len)
  sizes = sk.BlockSizes(block_q=bq, block_kv=bkv, block_kv_compute=bkv, block_q_dkv=bq,
                        block_kv_dkv=bkv, block_kv_dkv_compute=bkv, block_q_dq=bq,
                        block_kv_dq=bkv)
  return sk.make_splash_mha(mask, block_sizes=sizes, head_shards=1, q_seq_shards=1,
                            interpret=interpret), sk.SegmentIds


def _splash_local(q, k, v, segment_ids, *, interpret: bool):
  """One shard: the kernel takes [N, T, H] / [K, S, H] per example (GQA in-kernel)."""
  _, t, n, _ = q.shape
  kernel, segment_type = _splash_kernel(n, t, k.shape[1], interpret)
  q, k, v = (jnp.transpose(a, (0, 2, 1, 3)) for a in (q, k, v))  # [B, N|K, T|S, H]
  segment_ids = segment_ids.astype(jnp.int32)
  run = lambda q1, k1, v1, s1: kernel(q1, k1, v1, segment_ids=segment_type(q=s1, kv=s1))
  out = jax.vmap(run)(q, k, v, segment_ids)  # [B, N, T, H]
  return jnp.transpose(out, (0, 2, 1, 3))
