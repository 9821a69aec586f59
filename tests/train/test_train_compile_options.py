"""The train step's XLA options follow the platform of its state's mesh."""

import collections
import types

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from unified_mm.train.compile_options import CPU_TRAIN_STEP, train_step_options
from unified_mm.train.step import jit_train_step


def _step(state, batch):
  h = jnp.tanh(batch["x"] @ state["w"])
  return {"w": state["w"] - 0.1 * batch["x"].T @ h}, {"loss": jnp.mean(h * h)}


def test_a_cpu_train_step_compiles_without_ynnpack_fusions():
  mesh = Mesh(np.array(jax.devices()[:1]), ("data",))
  replicated = NamedSharding(mesh, PartitionSpec())
  state = {"w": jnp.ones((64, 64))}
  batch = {"x": jnp.ones((128, 64))}
  step = jit_train_step(_step, {"w": replicated}, {"x": replicated})
  assert train_step_options({"w": replicated}) == CPU_TRAIN_STEP
  text = step.lower(state, batch).compile().as_text()
  assert "dot(" in text or "dot_general" in text
  assert "ynn_fusion" not in text


def test_other_platforms_get_xla_defaults():
  def sharding(platform):
    device = collections.namedtuple("Device", "platform")(platform)
    return types.SimpleNamespace(device_set={device})
  assert train_step_options({"w": sharding("tpu"), "b": sharding("tpu")}) == {}
  assert train_step_options({"w": sharding("gpu")}) == {}
  assert train_step_options({"w": sharding("cpu")}) == CPU_TRAIN_STEP
