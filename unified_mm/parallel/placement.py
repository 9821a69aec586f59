"""Where a frozen stage is restored for inference: one device, or a mesh like training.

    umm generate ... --mesh config            # each stage on its own config's mesh and rules
    umm generate ... --mesh fsdp=4,tensor=2   # every stage on this mesh, its own rules

`None` (no `--mesh`) keeps what generation always did: params replicated on
one local device, no logical rules active; its outputs are bit-identical to
before this option existed (`umm demo` and its benchmark measure that path).
A placed stage is restored sharded as in training (the saved config's rules
over the mesh), and is called under `activate(mesh, rules)`, so activations
and the KV cache are constrained by the same logical names
(`models/transformer/attention.py` CACHE_AXES).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax

from unified_mm.parallel.mesh import MESH_AXES, make_mesh

CONFIG = "config"   # the stage's own saved `mesh`


def parse_mesh(text: str | None):
  """`None`/"" -> None; "config" -> CONFIG; "fsdp=4,tensor=2" -> {axis: size} (data: the rest)."""
  if not text:
    return None
  if text == CONFIG:
    return CONFIG
  sizes = {"data": -1}
  for part in text.split(","):
    axis, sep, value = part.partition("=")
    axis = axis.strip()
    if not sep or axis not in MESH_AXES:
      raise ValueError(f"--mesh={text}: expected `config` or axis=size pairs over "
                       f"{', '.join(MESH_AXES)} (e.g. fsdp=4,tensor=2)")
    try:
      sizes[axis] = int(value)
    except ValueError:
      raise ValueError(f"--mesh={text}: {axis}={value!r} is not an integer") from None
  return sizes


def stage_mesh(mesh, saved_mesh: Mapping, devices: Sequence | None = None):
  """The jax Mesh a stage is placed on: `mesh` is CONFIG (the stage's `saved_mesh`)
  or an {axis: size} override; over `devices` (default: all)."""
  sizes = dict(saved_mesh) if mesh == CONFIG else dict(mesh)
  # A pod config's multi-slice factor means nothing on the devices at hand.
  sizes.pop("dcn_data", None)
  return make_mesh(sizes, list(devices if devices is not None else jax.devices()))
