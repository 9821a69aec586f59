"""The `lm` task: packed synthetic rows, exact resume, host sharding, loss falls."""

import json

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from unified_mm.config.loading import load_config
from unified_mm.tasks import make_task
from unified_mm.tasks.lm import BATCH_KEYS, uniform_loss


@pytest.fixture(scope="module")
def config(repo_root):
  return load_config(str(repo_root / "experiments/lm.py:tiny"),
                     ["model.num_layers=2", "train.batch_size=8"])


@pytest.fixture(scope="module")
def task(config):
  return make_task(config)


def test_rows_are_packed_documents(task):
  batch = next(task.make_data(0, 1, 4))
  assert set(batch) == set(BATCH_KEYS) == set(task.batch_axes())
  assert all(v.shape == (4, 128) for v in batch.values())
  v = task.vocab
  for row in range(4):
    tok, tgt, pos, seg = (batch[k][row] for k in ("tokens", "targets", "positions", "segment_ids"))
    starts = np.flatnonzero(pos == 0)
    assert len(starts) >= 2 and (np.diff(seg) >= 0).all()
    np.testing.assert_array_equal(np.flatnonzero(np.diff(seg)) + 1, starts[1:])
    assert (tok[starts] == v.bos).all()                    # every document starts with BOS
    same = seg[1:] == seg[:-1]
    np.testing.assert_array_equal(tok[1:][same], tgt[:-1][same])  # targets are next tokens
  np.testing.assert_array_equal(batch["modality"], v.modality(batch["targets"]))
  assert (batch["modality"] == 1).any() and (batch["modality"] == 0).any()


def test_iterator_resumes_exactly_and_hosts_are_disjoint(task):
  it = task.make_data(0, 1, 4)
  for _ in range(3):
    next(it)
  state = json.loads(json.dumps(it.get_state()))
  expected = [next(it) for _ in range(2)]
  resumed = task.make_data(0, 1, 4)
  resumed.set_state(state)
  for want in expected:
    got = next(resumed)
    for k in BATCH_KEYS:
      np.testing.assert_array_equal(got[k], want[k])
  host0, host1 = next(task.make_data(0, 2, 2)), next(task.make_data(1, 2, 2))
  whole = next(task.make_data(0, 1, 4))
  np.testing.assert_array_equal(np.concatenate([host0["tokens"], host1["tokens"]]), whole["tokens"])
  assert not np.array_equal(host0["tokens"], host1["tokens"])


def test_loss_falls_clearly(task, config):
  model = jax.jit(lambda: task.build_model(nnx.Rngs(0)))()
  graphdef, params = nnx.split(model, nnx.Param)
  tx = optax.adamw(3e-3, b2=0.95)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, batch):
    grad_fn = jax.value_and_grad(lambda p: task.loss(nnx.merge(graphdef, p), batch, None),
                                 has_aux=True)
    (loss, metrics), grads = grad_fn(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, metrics

  data = task.make_data(0, 1, 8)
  losses = []
  for _ in range(40):
    params, opt_state, metrics = step(params, opt_state, next(data))
    losses.append(float(metrics["ce"]))
  assert losses[0] > uniform_loss(config) - 0.5
  assert np.mean(losses[-5:]) < losses[0] - 2.0, losses
  assert {"text/loss", "image/loss", "image/accuracy"} <= set(metrics)
  evaluator, = task.evaluators()
  results = dict(evaluator.run(nnx.merge(graphdef, params)))
  assert results["loss"] < losses[0] - 2.0 and "image/accuracy" in results
