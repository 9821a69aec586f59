"""The analytic memory model: exact for the state, sensible for activations."""

import math

import jax
import ml_collections
import pytest

from unified_mm.config.loading import load_config
from unified_mm.config.validation import validate
from unified_mm.parallel.mesh import make_mesh
from unified_mm.parallel.sharding import activate, rules_from_config
from unified_mm.plan import memory
from unified_mm.tasks import make_task
from unified_mm.train.optim import make_optimizer
from unified_mm.train.state import abstract_model, make_init_fn, state_sharding

MESH = ["mesh.data=1", "mesh.fsdp=4", "mesh.tensor=2"]


def _per_device(tree, shardings) -> int:
  return sum(math.prod(s.shard_shape(a.shape)) * a.dtype.itemsize
             for a, s in zip(jax.tree.leaves(tree), jax.tree.leaves(shardings)))


@pytest.mark.parametrize("overrides", [[], MESH, [*MESH, "optim.ema_decay=0.999"]])
def test_state_bytes_equal_the_trainers_sharded_state(overrides):
  config = load_config("experiments/lm.py:tiny", overrides)
  task = make_task(config)
  sizes = validate(config, 8)
  params, opt, ema, grads = memory.state_bytes(config, task, sizes)

  mesh, rules = make_mesh(config.mesh), rules_from_config(config.rules)
  _, abstract_params, param_shardings = abstract_model(task, config.seed, mesh, rules)
  tx, _ = make_optimizer(config.optim, int(config.train.steps), abstract_params)
  with activate(mesh, rules):
    state = jax.eval_shape(make_init_fn(task, config.seed, tx, config.optim.ema_decay > 0))
  shardings = state_sharding(state, param_shardings, mesh)
  assert params == _per_device(state.params, shardings.params)
  assert opt == _per_device(state.opt_state, shardings.opt_state)
  assert ema == (_per_device(state.ema, shardings.ema) if state.ema is not None else 0)
  assert grads == params
  if overrides:  # sharded 8 ways (fsdp x tensor) where dimensions allow: far below replicated
    assert params < memory.state_bytes(load_config("experiments/lm.py:tiny"), task,
                                       validate(load_config("experiments/lm.py:tiny"), 8))[0] / 3


def _model(**kw):
  base = dict(vocab_size=65536, d_model=4096, num_layers=32, num_heads=32, num_kv_heads=32,
              head_dim=128, mlp_dim=11008, dtype="bfloat16", remat="none")
  return ml_collections.ConfigDict({**base, **kw})


def test_activation_model_follows_remat_rows_and_sharding():
  sizes = {"data": 1, "fsdp": 128, "tensor": 1, "sequence": 1}
  act = lambda rows=8, s=sizes, **kw: memory.transformer_activations(
      _model(**kw), seq_len=4096, rows=rows, sizes=s)
  assert act(remat="full") < act(remat="dots") < act(remat="none")
  assert act(rows=16) == 2 * act(rows=8)
  assert act(s={**sizes, "tensor": 8}) < act() / 4   # heads, MLP and vocab split 8 ways
  # full remat keeps one [T, D] bf16 per layer and row: 32 x 4096 x 4096 x 2 bytes = 1 GiB.
  assert act(rows=1, remat="full") > 1 * 2**30
