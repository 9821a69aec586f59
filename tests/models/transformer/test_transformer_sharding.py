"""The tiny preset sharded fsdp=4 x tensor=2 on 8 fake devices equals one device."""

import jax
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from unified_mm.config.loading import load_config
from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.sharding import activate, logical_to_spec, rules_from_config, state_shardings
from unified_mm.tasks import make_task


@pytest.fixture(scope="module")
def setup(repo_root):
  if jax.device_count() < 8:
    pytest.skip("needs 8 (fake) devices")
  config = load_config(str(repo_root / "experiments/lm.py:tiny"),
                       ["mesh.data=1", "mesh.fsdp=4", "mesh.tensor=2", "model.num_layers=2"])
  task = make_task(config)
  batch = next(task.make_data(0, 1, 8))
  return config, task, batch


def _forward(task):
  def f(model, batch):
    logits = model(batch["tokens"], batch["positions"], batch["segment_ids"])
    return logits, task.loss(model, batch, None)
  return jax.jit(f)


def test_sharded_forward_and_loss_equal_single_device(setup):
  config, task, batch = setup
  single = jax.jit(lambda: task.build_model(nnx.Rngs(0)))()
  logits1, (loss1, metrics1) = _forward(task)(single, batch)

  mesh, rules = make_mesh(config.mesh), rules_from_config(config.rules)
  with activate(mesh, rules):
    abstract = nnx.eval_shape(lambda: task.build_model(nnx.Rngs(0)))
    graphdef = nnx.graphdef(abstract)
    shardings = state_shardings(nnx.state(abstract), mesh, rules)
    state = jax.jit(lambda: nnx.state(task.build_model(nnx.Rngs(0))), out_shardings=shardings)()
    sharded = nnx.merge(graphdef, state)
    batch_sharding = NamedSharding(mesh, logical_to_spec(("batch", "length"), rules))
    device_batch = {k: jax.device_put(v, batch_sharding) for k, v in batch.items()}
    logits2, (loss2, metrics2) = _forward(task)(sharded, device_batch)

  kernel = sharded.blocks[0].mlp.wi_gate[...]
  assert kernel.sharding.spec == PartitionSpec("fsdp", "tensor")
  assert kernel.addressable_shards[0].data.shape == (128 // 4, 512 // 2)
  assert sharded.blocks[0].attn.wq[...].sharding.spec == PartitionSpec("fsdp", "tensor", None)
  assert sharded.embed.embedding[...].sharding.spec == PartitionSpec("tensor", "fsdp")
  np.testing.assert_allclose(np.asarray(logits2), np.asarray(logits1), atol=1e-5, rtol=1e-5)
  assert abs(float(loss2) - float(loss1)) < 1e-5
  for k in metrics1:
    assert abs(float(metrics2[k]) - float(metrics1[k])) < 1e-4, k
