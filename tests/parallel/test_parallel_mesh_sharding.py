"""Meshes from config and logical->mesh sharding on 8 fake CPU devices."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from unified_mm.config.base import DEFAULT_RULES, mesh_config
from unified_mm.parallel import mesh as mesh_lib
from unified_mm.parallel import sharding


def test_eight_fake_devices():
  assert jax.device_count() == 8


def test_mesh_axes_and_rest():
  m = mesh_lib.make_mesh(mesh_config(data=-1, fsdp=2, tensor=2))
  assert mesh_lib.mesh_shape(m) == {"data": 2, "fsdp": 2, "sequence": 1, "tensor": 2}
  assert all(t == jax.sharding.AxisType.Auto for t in m.axis_types)


def test_impossible_mesh():
  with pytest.raises(mesh_lib.MeshError, match="mesh has 16 devices but 8"):
    mesh_lib.make_mesh(mesh_config(data=1, fsdp=4, tensor=4))


class _Slice:
  """A device proxy carrying `slice_index`, as TPU devices of a multi-slice job do."""

  def __init__(self, device, slice_index):
    self.device, self.slice_index = device, slice_index
    self.id, self.process_index = device.id, device.process_index
    self.platform, self.device_kind = device.platform, device.device_kind
    self.coords, self.core_on_chip = (device.id % 4, 0, 0), 0

  def __repr__(self):
    return f"Slice({self.slice_index}, {self.id})"


def test_hybrid_mesh_puts_slices_outermost():
  devices = jax.devices()
  proxies = [_Slice(d, i // 4) for i, d in enumerate(devices)]
  arr = mesh_lib.device_array(mesh_config(data=1, fsdp=2, tensor=2, dcn_data=2), proxies)
  assert arr.shape == (2, 2, 1, 2)
  slices = np.vectorize(lambda p: p.slice_index)(arr)
  # The data axis crosses slices (DCN); every other axis stays inside one slice.
  assert (slices[0] == 0).all() and (slices[1] == 1).all()


def test_constrain_and_param_sharding():
  m = mesh_lib.make_mesh(mesh_config(data=2, fsdp=2, tensor=2))
  rules = sharding.rules_from_config([list(r) for r in DEFAULT_RULES])

  class Mlp(nnx.Module):
    def __init__(self, *, rngs):
      init = nnx.with_partitioning(nnx.initializers.lecun_normal(), ("embed", "mlp"))
      self.w = nnx.Param(init(rngs.params(), (16, 32)))

    def __call__(self, x):  # [B, D]
      return sharding.constrain(x @ self.w[...], ("batch", "mlp"))

  with sharding.activate(m, rules):
    model = Mlp(rngs=nnx.Rngs(0))
    assert model.w[...].sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    y = jax.jit(lambda mdl, x: mdl(x))(model, jnp.ones((8, 16)))
  assert y.sharding.spec == jax.sharding.PartitionSpec(("data", "fsdp"), "tensor")
  # Outside a mesh the helper is a no-op, so model code runs unchanged on one device.
  x = jnp.ones((2, 3))
  assert sharding.constrain(x, ("batch", "embed")) is x


def test_state_shardings_from_abstract_model():
  m = mesh_lib.make_mesh(mesh_config(data=2, fsdp=2, tensor=2))
  rules = sharding.rules_from_config(DEFAULT_RULES)
  init = nnx.with_partitioning(nnx.initializers.zeros_init(), ("vocab", "embed"))

  class Embed(nnx.Module):
    def __init__(self):
      self.table = nnx.Param(init(jax.random.key(0), (64, 8)))

  with sharding.activate(m, rules):
    abstract = nnx.eval_shape(Embed)
  shardings = sharding.state_shardings(nnx.state(abstract), m, rules)
  assert jax.tree.leaves(shardings)[0].spec == jax.sharding.PartitionSpec("tensor", "fsdp")
