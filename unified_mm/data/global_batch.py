"""A host-local numpy batch -> one global `jax.Array` per entry.

Each host holds `local_batch_size` rows; the global batch is the hosts'
rows in process order, sharded over the mesh axes that `batch` maps to.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def make_global_batch(batch: Mapping[str, np.ndarray], mesh: Mesh,
                      batch_axes: str | Sequence[str] | None = ("data", "fsdp"),
                      ) -> dict[str, jax.Array]:
  """`batch_axes`: the mesh axes the leading (batch) dimension is split over."""
  if isinstance(batch_axes, (list, tuple)):
    batch_axes = tuple(a for a in batch_axes if a in mesh.axis_names) or None
  out = {}
  for k, v in batch.items():
    v = np.asarray(v)
    spec = PartitionSpec(batch_axes, *([None] * (v.ndim - 1)))
    out[k] = jax.make_array_from_process_local_data(NamedSharding(mesh, spec), v)
  return out
