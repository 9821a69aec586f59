"""Analytic per-device memory of a training step, before anything compiles.

Parameters, optimiser state and gradients are exact: shapes come from
`eval_shape` of the task's own model and optimiser, shards from the config's
logical-axis rules and mesh sizes. Activations are a model of the
transformer's step (what the backward pass keeps per layer under the
configured remat policy, the f32 attention scores counted as the full
[T, S] square, an upper bound for the chunked causal attention, and the f32
logits of the loss); XLA's AOT figure is the check.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
from flax import nnx
from jax.sharding import PartitionSpec


@dataclasses.dataclass
class MemoryEstimate:
  params: int
  optimizer: int
  ema: int
  gradients: int
  activations: int | None       # None: no activation model for this stage
  remat: str = "none"
  param_count: int = 0

  @property
  def total(self) -> int:
    return self.params + self.optimizer + self.ema + self.gradients + (self.activations or 0)


def _shard_bytes(shape, dtype, spec: PartitionSpec, sizes: dict[str, int]) -> int:
  dims = list(shape)
  for i, axes in enumerate(tuple(spec)[:len(dims)]):
    if axes is None:
      continue
    for axis in (axes if isinstance(axes, tuple) else (axes,)):
      dims[i] = math.ceil(dims[i] / sizes.get(axis, 1))
  return math.prod(dims) * np.dtype(dtype).itemsize


def _param_specs(task, seed: int, rules) -> tuple[dict, dict]:
  """Abstract params and their PartitionSpecs, flat by the trainer's names."""
  from unified_mm.train.state import param_name, split_params

  # No mesh here: eager sharding off, so modules whose params carry logical
  # axes (the tokenizer's convs) build abstractly too; the specs are read below.
  with nnx.use_eager_sharding(False):
    model = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(seed)))
  with nnx.logical_axis_rules(rules):
    specs = nnx.get_partition_spec(nnx.state(model, nnx.Param))
  flat_specs = {param_name(p): s for p, s in jax.tree_util.tree_flatten_with_path(
      specs, is_leaf=lambda x: isinstance(x, PartitionSpec))[0]}
  _, params = split_params(model)
  return params, flat_specs


def state_bytes(config, task, sizes: dict[str, int], counts: list | None = None
                ) -> tuple[int, int, int, int]:
  """(params, optimizer state, EMA, gradients) bytes per device.

  `counts`, if given, receives the total parameter count.
  """
  from unified_mm.parallel.sharding import rules_from_config
  from unified_mm.train.optim import make_optimizer

  params, specs = _param_specs(task, config.seed, rules_from_config(config.rules))
  if counts is not None:
    counts.append(sum(math.prod(v.shape) for v in params.values()))
  per_param = {k: _shard_bytes(v.shape, v.dtype, specs.get(k, PartitionSpec()), sizes)
               for k, v in params.items()}
  tx, _ = make_optimizer(config.optim, int(config.train.steps), params)
  opt = jax.eval_shape(tx.init, params)
  opt_bytes = 0
  for path, leaf in jax.tree_util.tree_flatten_with_path(opt)[0]:
    last = path[-1] if path else None
    name = last.key if isinstance(last, jax.tree_util.DictKey) else None
    spec = specs.get(name, PartitionSpec()) if name in params and leaf.ndim else PartitionSpec()
    opt_bytes += _shard_bytes(leaf.shape, leaf.dtype, spec, sizes)
  p = sum(per_param.values())
  ema = p if config.optim.get("ema_decay", 0) > 0 else 0
  return p, opt_bytes, ema, p


def transformer_activations(model, *, seq_len: int, rows: int, sizes: dict[str, int]) -> int:
  """Bytes the backward pass of the transformer keeps live on one device.

  `rows` is the micro-batch per device. Per layer, with remat "none": residual
  and norm outputs (4 x [T, D]), q/k/v before and after RoPE, the f32
  attention scores and the probabilities ([N, T, S]), the attention output
  and the three MLP tensors ([T, F]). "full" keeps one [T, D] per layer and
  recomputes one layer at a time; "dots" keeps the projection outputs and
  recomputes the attention square.
  """
  s = np.dtype(model.get("dtype", "float32")).itemsize
  tp, t = sizes.get("tensor", 1), math.ceil(seq_len / sizes.get("sequence", 1))
  d, f, h = model.d_model, model.mlp_dim, model.head_dim
  n, k = math.ceil(model.num_heads / tp), math.ceil(model.num_kv_heads / tp)
  scores = t * seq_len * n * (4 + s)
  qkv = t * (n + 2 * k) * h * s
  full_layer = 4 * t * d * s + 2 * qkv + scores + t * n * h * s + 3 * t * math.ceil(f / tp) * s
  remat = model.get("remat", "none")
  layers = model.num_layers
  if remat == "full":
    per_row = layers * t * d * s + full_layer
  elif remat == "dots":
    per_row = layers * (qkv + 2 * t * d * s + 2 * t * math.ceil(f / tp) * s) + scores
  else:
    per_row = layers * full_layer
  logits = t * math.ceil(model.vocab_size / tp) * (s + 4 + 4)  # logits, f32 log-softmax, grad
  return rows * (per_row + logits)


def estimate(config, task, sizes: dict[str, int]) -> MemoryEstimate:
  """`sizes`: resolved mesh axis sizes (data includes the DCN factor)."""
  counts = []
  p, opt, ema, grads = state_bytes(config, task, sizes, counts)
  acts = None
  model = config.model
  if all(key in model for key in ("d_model", "num_layers", "mlp_dim", "head_dim")) and \
      "seq_len" in config.data:
    shards = sizes.get("data", 1) * sizes.get("fsdp", 1)
    micro = int(config.train.batch_size) // max(1, int(config.train.get("grad_accum_steps", 1)))
    acts = transformer_activations(model, seq_len=int(config.data.seq_len),
                                   rows=math.ceil(micro / shards), sizes=sizes)
  return MemoryEstimate(p, opt, ema, grads, acts, str(config.model.get("remat", "none")),
                        counts[0])
