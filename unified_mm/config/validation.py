"""Checks a config against the machine before anything is built or compiled.

Each failure is one line naming the key and the value, e.g.
`mesh.tensor=3: model.num_heads=8 is not divisible by it`.
"""

from __future__ import annotations

from unified_mm.config.loading import ConfigError
from unified_mm.parallel.mesh import MESH_AXES, MeshError, resolve_axis_sizes
from unified_mm.parallel.sharding import LOGICAL_AXES


def validate_rules(rules, prefix: str = "rules") -> None:
  for i, rule in enumerate(rules):
    if len(rule) != 2:
      raise ConfigError(f"{prefix}[{i}]={rule!r}: a rule is (logical_axis, mesh_axes)")
    name, axes = rule
    if name not in LOGICAL_AXES:
      raise ConfigError(f"{prefix}[{i}]: unknown logical axis name {name!r}")
    for axis in (axes if isinstance(axes, (list, tuple)) else [axes]):
      if axis is not None and axis not in MESH_AXES:
        raise ConfigError(f"{prefix}[{i}] ({name}): unknown mesh axis {axis!r}; expected one of {MESH_AXES}")


def validate_mesh(mesh, num_devices: int, prefix: str = "mesh") -> dict[str, int]:
  dcn = int(mesh.get("dcn_data", 1) or 1)
  if dcn < 1 or num_devices % dcn:
    raise ConfigError(f"{prefix}.dcn_data={dcn}: does not divide the {num_devices} devices")
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


def validate_batch(train, sizes: dict[str, int]) -> None:
  shards = sizes["data"] * sizes["fsdp"]
  per_step = train.batch_size // max(1, train.get("grad_accum_steps", 1))
  if train.batch_size % max(1, train.get("grad_accum_steps", 1)):
    raise ConfigError(f"train.batch_size={train.batch_size}: not divisible by "
                      f"train.grad_accum_steps={train.grad_accum_steps}")
  if per_step % shards:
    raise ConfigError(f"train.batch_size={train.batch_size}: the micro-batch of {per_step} "
                      f"does not split over mesh data x fsdp = {shards}")


def validate(config, num_devices: int) -> dict[str, int]:
  """Returns the resolved mesh sizes, or raises ConfigError naming the key."""
  validate_rules(config.rules)
  sizes = validate_mesh(config.mesh, num_devices)
  validate_heads(config.model, sizes)
  validate_batch(config.train, sizes)
  return sizes
