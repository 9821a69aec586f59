"""Checks a config against the machine before anything is built or compiled.

Each failure is one line naming the key and the value, e.g.
`mesh.tensor=3: model.num_heads=8 is not divisible by it`.
"""

from __future__ import annotations

import math
import numbers

from unified_mm.config.base import ckpt_config, optim_config, train_config
from unified_mm.config.loading import ConfigError
from unified_mm.parallel.mesh import MESH_AXES, MeshError, resolve_axis_sizes
from unified_mm.parallel.sharding import LOGICAL_AXES

# Sizes a model cannot have zero of, by name, across the stages' models
# (a model key not named here only has to be >= 0: e.g. the renderer's `ar_dim=0` and
# `visual_codes=0` turn an input off, `context_depth=0` reads the context as embedded,
# as DiT and PixArt-α do, experiments/images.py).
POSITIVE_MODEL_KEYS = frozenset({
    "d_model", "head_dim", "mlp_dim", "num_heads", "num_kv_heads", "num_layers", "vocab_size",
    "max_len", "depth", "embed_dim", "latent_channels", "latent_size", "patch_size",
    "image_size", "norm_groups", "text_vocab", "text_len",
    "stem_patch", "width", "vocab", "num_res_blocks"})
POSITIVE_DATA_KEYS = frozenset({"seq_len", "image_size", "resolution", "text_vocab_size"})

# (section, key) -> (lowest allowed, highest allowed or None); types come from base.py.
_RANGES = {
    ("train", "steps"): (0, None), ("train", "batch_size"): (1, None),
    ("train", "grad_accum_steps"): (1, None), ("train", "log_every_steps"): (0, None),
    ("train", "eval_every_steps"): (0, None), ("train", "eval_batches"): (0, None),
    ("optim", "lr"): (0, None), ("optim", "warmup_steps"): (0, None),
    ("optim", "min_lr_ratio"): (0, 1), ("optim", "weight_decay"): (0, None),
    ("optim", "b1"): (0, 1), ("optim", "b2"): (0, 1), ("optim", "eps"): (0, None),
    ("optim", "clip_norm"): (0, None), ("optim", "ema_decay"): (0, 1),
    ("ckpt", "save_every_steps"): (0, None), ("ckpt", "max_to_keep"): (1, None),
}
_CHOICES = {("optim", "decay"): ("cosine", "linear", "constant"),
            ("ckpt", "keep_best_mode"): ("min", "max")}
_DEFAULTS = {"train": train_config(), "optim": optim_config(), "ckpt": ckpt_config()}


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_type(key: str, value, default) -> None:
  if isinstance(default, bool):
    ok, want = isinstance(value, bool), "a bool"
  elif _is_int(default):
    ok, want = _is_int(value), "an integer"
  elif isinstance(default, float):
    ok, want = isinstance(value, numbers.Real) and not isinstance(value, bool), "a number"
  elif isinstance(default, str):
    ok, want = isinstance(value, str), "a string"
  else:
    return
  if not ok:
    raise ConfigError(f"{key}={value!r}: expected {want}")


def validate_sections(config) -> None:
  """Types and ranges of the trainer's own keys (train, optim, ckpt), and the seed."""
  seed = config.get("seed", 0)
  if not _is_int(seed) or seed < 0:
    raise ConfigError(f"seed={seed!r}: expected an integer >= 0")
  for section, defaults in _DEFAULTS.items():
    values = config.get(section)
    if values is None:
      continue
    for key, default in defaults.items():
      if key not in values:
        continue
      name, value = f"{section}.{key}", values[key]
      _check_type(name, value, default)
      low, high = _RANGES.get((section, key), (None, None))
      if low is not None and value < low:
        raise ConfigError(f"{name}={value!r}: must be >= {low}")
      if high is not None and value > high:
        raise ConfigError(f"{name}={value!r}: must be <= {high}")
      choices = _CHOICES.get((section, key))
      if choices and value not in choices:
        raise ConfigError(f"{name}={value!r}: expected one of {', '.join(choices)}")


def validate_sizes(section, prefix: str, positive: frozenset) -> None:
  """Integer sizes of a model or data section: >= 0, and >= 1 for the named ones."""
  for key, value in section.items():
    name = f"{prefix}.{key}"
    if key in positive and not _is_int(value):
      raise ConfigError(f"{name}={value!r}: expected an integer")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
      continue
    if key in positive and value < 1:
      raise ConfigError(f"{name}={value!r}: must be >= 1")
    if _is_int(value) and value < 0 and key != "seed":
      raise ConfigError(f"{name}={value!r}: must be >= 0")


def validate_rules(rules, prefix: str = "rules") -> None:
  if isinstance(rules, (str, bytes)) or not hasattr(rules, "__iter__"):
    raise ConfigError(f"{prefix}={rules!r}: expected a list of (logical_axis, mesh_axes) pairs")
  for i, rule in enumerate(rules):
    if isinstance(rule, (str, bytes)) or not hasattr(rule, "__len__") or len(rule) != 2:
      raise ConfigError(f"{prefix}[{i}]={rule!r}: a rule is (logical_axis, mesh_axes)")
    name, axes = rule
    if not isinstance(name, str) or name not in LOGICAL_AXES:
      raise ConfigError(f"{prefix}[{i}]: unknown logical axis name {name!r}")
    for axis in (axes if isinstance(axes, (list, tuple)) else [axes]):
      if axis is not None and (not isinstance(axis, str) or axis not in MESH_AXES):
        raise ConfigError(f"{prefix}[{i}] ({name}): unknown mesh axis {axis!r}; expected one of {MESH_AXES}")


def validate_mesh(mesh, num_devices: int, prefix: str = "mesh") -> dict[str, int]:
  for axis in (*MESH_AXES, "dcn_data"):
    if axis in mesh and not _is_int(mesh[axis]):
      raise ConfigError(f"{prefix}.{axis}={mesh[axis]!r}: expected an integer (-1: the rest)")
  dcn = int(mesh.get("dcn_data", 1) or 1)
  if dcn < 1 or num_devices % dcn:
    raise ConfigError(f"{prefix}.dcn_data={dcn}: does not divide the {num_devices} devices")
  given = {a: int(mesh.get(a, 1)) for a in MESH_AXES}
  if -1 not in given.values() and all(v > 0 for v in given.values()) and (
      math.prod(given.values()) != num_devices // dcn):
    shown = " x ".join(f"{prefix}.{a}={v}" for a, v in given.items())
    raise ConfigError(f"{shown}: the mesh has {math.prod(given.values())} devices but "
                      f"{num_devices // dcn} are available (set one axis to -1 for the rest)")
  try:
    sizes = resolve_axis_sizes(mesh, num_devices // dcn, prefix)
  except MeshError as e:
    raise ConfigError(str(e)) from None
  sizes["data"] *= dcn
  return sizes


def validate_heads(model, sizes: dict[str, int], prefix: str = "model") -> None:
  tensor = sizes["tensor"]
  for key in ("num_heads", "num_kv_heads"):
    if key in model and model[key] % tensor:
      raise ConfigError(
          f"{prefix}.{key}={model[key]}: not divisible by mesh.tensor={tensor}")
  if "num_heads" in model and "num_kv_heads" in model and model.num_heads % model.num_kv_heads:
    raise ConfigError(f"{prefix}.num_kv_heads={model.num_kv_heads}: does not divide "
                      f"{prefix}.num_heads={model.num_heads} (grouped-query attention)")


def validate_batch(train, sizes: dict[str, int], num_processes: int = 1) -> None:
  if train.batch_size % num_processes:
    raise ConfigError(f"train.batch_size={train.batch_size}: not divisible by the "
                      f"{num_processes} processes (each feeds batch_size / processes rows)")
  shards = sizes["data"] * sizes["fsdp"]
  per_step = train.batch_size // max(1, train.get("grad_accum_steps", 1))
  if train.batch_size % max(1, train.get("grad_accum_steps", 1)):
    raise ConfigError(f"train.batch_size={train.batch_size}: not divisible by "
                      f"train.grad_accum_steps={train.grad_accum_steps}")
  if per_step % shards:
    raise ConfigError(f"train.batch_size={train.batch_size}: the micro-batch of {per_step} "
                      f"does not split over mesh data x fsdp = {shards}")


def validate_packed_rows(rl, sizes: dict[str, int], num_processes: int = 1) -> None:
  """`rl.pack_rows`, the rows a grpo step packs its answers into (0: one per answer),
  splits over the processes and the mesh's batch shards like a batch does."""
  rows = rl.get("pack_rows", 0)
  if not _is_int(rows) or rows < 0:
    raise ConfigError(f"rl.pack_rows={rows!r}: a number of rows >= 0 (0: one answer per row)")
  shards = sizes["data"] * sizes["fsdp"]
  if rows and (rows % num_processes or rows % shards):
    raise ConfigError(f"rl.pack_rows={rows}: does not split over the {num_processes} processes "
                      f"and mesh data x fsdp = {shards}")


def validate_sequence(config, sizes: dict[str, int]) -> None:
  seq_len = config.get("data", {}).get("seq_len")
  if _is_int(seq_len) and seq_len % sizes["sequence"]:
    raise ConfigError(f"data.seq_len={seq_len}: does not split over mesh.sequence={sizes['sequence']}")


def validate(config, num_devices: int, num_processes: int | None = None) -> dict[str, int]:
  """Returns the resolved mesh sizes, or raises ConfigError naming the key.

  Pure checks of values against each other and the device count: nothing is
  built, nothing compiles.
  """
  if num_processes is None:
    import jax  # noqa: PLC0415 -- the caller has already initialised the backend
    num_processes = jax.process_count()
  validate_sections(config)
  validate_sizes(config.get("model", {}), "model", POSITIVE_MODEL_KEYS)
  validate_sizes(config.get("data", {}), "data", POSITIVE_DATA_KEYS)
  validate_rules(config.rules)
  sizes = validate_mesh(config.mesh, num_devices)
  validate_heads(config.model, sizes)
  validate_batch(config.train, sizes, num_processes)
  if "rl" in config:
    validate_packed_rows(config.rl, sizes, num_processes)
  validate_sequence(config, sizes)
  return sizes
