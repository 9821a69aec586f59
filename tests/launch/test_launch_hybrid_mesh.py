"""Multi-slice / multi-host meshes: the DCN axis (mesh.dcn_data) is outermost.

Fake devices: proxies of the 8 CPU devices carrying `process_index` (GPU hosts,
no `slice_index`), and with libtpu the real device list of a 2-slice TPU
topology (which carries `slice_index`).
"""

import dataclasses

import jax
import numpy as np
import pytest

from unified_mm.config.base import mesh_config
from unified_mm.parallel import mesh as mesh_lib
from unified_mm.plan import aot
from unified_mm.plan.hardware import parse_topology


@dataclasses.dataclass(frozen=True, eq=False)
class _HostDevice:
  """A CPU device that pretends to live on host `process_index` (no slice_index)."""
  device: object
  process_index: int
  id: int

  @property
  def platform(self):
    return "gpu"

  @property
  def device_kind(self):
    return "fake host device"


def test_gpu_hosts_are_the_granules_of_the_dcn_axis():
  hosts = [_HostDevice(d, i // 4, i) for i, d in enumerate(jax.devices()[:8])]
  arr = mesh_lib.device_array(mesh_config(data=1, fsdp=4, tensor=1, dcn_data=2), hosts)
  assert arr.shape == (2, 4, 1, 1)
  procs = np.vectorize(lambda d: d.process_index)(arr)
  # data (outermost) crosses hosts; fsdp stays inside each host's NVLink domain.
  assert (procs[0] == 0).all() and (procs[1] == 1).all()


def test_dcn_axis_must_divide_devices():
  with pytest.raises(mesh_lib.MeshError, match="dcn_data=3"):
    mesh_lib.device_array(mesh_config(dcn_data=3), jax.devices()[:8])


@pytest.mark.skipif(not aot.libtpu_available(), reason="libtpu not installed (pip install '.[tpu]')")
def test_two_tpu_slices_make_a_hybrid_mesh():
  topo = parse_topology("2xv5p-16")
  devices = aot.topology_devices(topo)
  assert len(devices) == 16 and {d.slice_index for d in devices} == {0, 1}
  mesh = mesh_lib.make_mesh(mesh_config(data=1, fsdp=4, tensor=2, dcn_data=2), devices)
  assert mesh_lib.mesh_shape(mesh) == {"data": 2, "fsdp": 4, "sequence": 1, "tensor": 2}
  slices = np.vectorize(lambda d: d.slice_index)(mesh.devices)
  assert (slices[0] == 0).all() and (slices[1] == 1).all()
  # Within a slice the ICI axes hold all 8 chips of that slice exactly once.
  assert sorted(d.id for d in mesh.devices[1].flat) == sorted(
      d.id for d in devices if d.slice_index == 1)
