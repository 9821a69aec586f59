"""Device meshes from config: `data`, `fsdp`, `tensor`, `sequence` axes.

The axis-type choice lives here and only here: every mesh is built with
`AxisType.Auto` so plain `jit` + NamedSharding code (GSPMD propagation) works.
A multi-slice TPU job gets a hybrid mesh whose DCN axis is outermost.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import AxisType, Mesh

MESH_AXES = ("data", "fsdp", "sequence", "tensor")


class MeshError(ValueError):
  pass


def resolve_axis_sizes(sizes: Mapping[str, int], num_devices: int,
                       prefix: str = "mesh") -> dict[str, int]:
  """Fills the one `-1` axis with "the rest" and checks the product."""
  sizes = {a: int(sizes.get(a, 1)) for a in MESH_AXES}
  wild = [a for a, s in sizes.items() if s == -1]
  if len(wild) > 1:
    raise MeshError(f"{prefix}: only one axis may be -1, got {', '.join(f'{prefix}.{a}=-1' for a in wild)}")
  for a, s in sizes.items():
    if s == 0 or s < -1:
      raise MeshError(f"{prefix}.{a}={s}: axis sizes must be positive or -1")
  fixed = math.prod(s for s in sizes.values() if s != -1)
  if wild:
    if num_devices % fixed:
      raise MeshError(
          f"{prefix}.{wild[0]}=-1: the other axes multiply to {fixed}, which does not divide "
          f"the {num_devices} devices")
    sizes[wild[0]] = num_devices // fixed
  elif fixed != num_devices:
    shown = " x ".join(f"{prefix}.{a}={s}" for a, s in sizes.items() if s != 1) or f"{prefix}=1"
    raise MeshError(f"{shown}: mesh has {fixed} devices but {num_devices} are available")
  return sizes


def device_array(mesh_config: Mapping, devices: Sequence) -> np.ndarray:
  """Lays devices out as [data, fsdp, sequence, tensor] with JAX's helpers.

  `mesh_config` holds the per-slice axis sizes plus `dcn_data` (number of
  slices, data-parallel over DCN, default 1). Slices are TPU slices where
  devices carry `slice_index`, otherwise processes (GPU hosts).
  """
  dcn = int(mesh_config.get("dcn_data", 1) or 1)
  if len(devices) % dcn:
    raise MeshError(f"mesh.dcn_data={dcn}: does not divide the {len(devices)} devices")
  ici = resolve_axis_sizes(mesh_config, len(devices) // dcn)
  shape = tuple(ici[a] for a in MESH_AXES)
  if dcn > 1:
    dcn_shape = (dcn,) + (1,) * (len(MESH_AXES) - 1)
    return mesh_utils.create_hybrid_device_mesh(
        shape, dcn_shape, devices=devices, allow_split_physical_axes=True,
        process_is_granule=not hasattr(devices[0], "slice_index"))
  try:
    return mesh_utils.create_device_mesh(shape, devices=devices, allow_split_physical_axes=True)
  except (ValueError, NotImplementedError, AssertionError):
    # Fake CPU devices and odd GPU counts have no physical topology to honour.
    return np.asarray(devices).reshape(shape)


def make_mesh(mesh_config: Mapping, devices: Sequence | None = None) -> Mesh:
  """Builds the mesh for one model from its config section."""
  devices = list(devices if devices is not None else jax.devices())
  return Mesh(device_array(mesh_config, devices), MESH_AXES,
              axis_types=(AxisType.Auto,) * len(MESH_AXES))


def mesh_shape(mesh: Mesh) -> dict[str, int]:
  return dict(zip(mesh.axis_names, mesh.devices.shape))
