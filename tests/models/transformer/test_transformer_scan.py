"""Scanned layer stack (`scan_layers=True`) == the unrolled one with the same params,
restacked: logits, gradients under every remat policy, KV-cache decoding, names,
the weight-decay mask, and a sharded training step with the `layers` axis."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import PartitionSpec
from transformer_factories import TINY, flat_params, like, make_tiny, scanned_copy

from unified_mm.models.layer_stack import REMAT_POLICIES, stack_params, unstack_params
from unified_mm.models.transformer import Transformer
from unified_mm.models.transformer.params import count_params
from unified_mm.models.transformer.sampling import sample
from unified_mm.train.optim import decay_mask

V = TINY["vocab_size"]


@pytest.fixture(scope="module")
def models():
  unrolled = make_tiny(num_layers=3)
  return unrolled, scanned_copy(unrolled, num_layers=3)


def _packed_batch(seed=0, b=2, t=64):
  tokens = jax.random.randint(jax.random.key(seed), (b, t), 0, V)
  segments = jnp.asarray(np.repeat([[1, 2, 0]], b, 0).repeat([20, 36, 8], axis=1))
  positions = jnp.concatenate([jnp.arange(20), jnp.arange(36), jnp.arange(8)])[None].repeat(b, 0)
  return tokens, positions, segments


def test_scanned_params_are_stacked_with_a_layers_axis(models):
  unrolled, scanned = models
  assert count_params({**TINY, "num_layers": 3, "scan_layers": True}) == \
      count_params({**TINY, "num_layers": 3})
  wq = scanned.layers.attn.wq
  assert wq.shape == (3, 32, 4, 8)
  assert wq.get_metadata()["out_sharding"] == ("layers", "embed", "heads", "head_dim")
  names = set(flat_params(scanned))
  assert "layers.mlp_norm.scale" in names and not any(n.startswith("blocks") for n in names)


def test_scanned_logits_equal_unrolled(models):
  unrolled, scanned = models
  tokens, positions, segments = _packed_batch()
  forward = jax.jit(lambda m: m(tokens, positions, segments))
  np.testing.assert_allclose(forward(scanned), forward(unrolled), atol=1e-6, rtol=1e-6)
  hidden = jax.jit(lambda m: m.hidden_states(tokens, positions, segments))
  np.testing.assert_allclose(hidden(scanned), hidden(unrolled), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("remat", sorted(REMAT_POLICIES))
def test_scanned_gradients_equal_unrolled_under_every_remat(models, remat):
  unrolled, _ = models
  tokens, positions, segments = _packed_batch(1)
  scanned = scanned_copy(unrolled, num_layers=3, remat=remat)
  loss = lambda m: jnp.mean(m(tokens, positions, segments) ** 2)
  g1 = flat_params(jax.jit(jax.grad(loss))(unrolled))
  g2 = unstack_params(flat_params(jax.jit(jax.grad(loss))(scanned)), "blocks")
  assert g1.keys() == g2.keys()
  for name in g1:
    np.testing.assert_allclose(g2[name], g1[name], atol=1e-6, rtol=1e-5, err_msg=name)


def test_scanned_kv_cache_decoding_equals_recompute_and_unrolled(models):
  unrolled, scanned = models
  prompt = jax.random.randint(jax.random.key(2), (2, 8), 0, V)
  steps = 24
  cache = scanned.init_cache(2, 8 + steps)
  assert cache["layers"]["k"].shape == (3, 2, 2, 8 + steps, 8)
  cached = np.asarray(sample(scanned, prompt, steps, jax.random.key(0), temperature=0.0))
  forward = jax.jit(lambda m, t: m(t))
  buf = jnp.zeros((2, 8 + steps), jnp.int32).at[:, :8].set(prompt)
  for i in range(steps):
    buf = buf.at[:, 8 + i].set(jnp.argmax(forward(scanned, buf)[:, 8 + i - 1], axis=-1))
  np.testing.assert_array_equal(cached, np.asarray(buf[:, 8:]))
  plain = np.asarray(sample(unrolled, prompt, steps, jax.random.key(0), temperature=0.0))
  np.testing.assert_array_equal(cached, plain)
  assert len(np.unique(cached)) > 3


def test_stack_and_unstack_params_round_trip(models):
  unrolled, _ = models
  flat = flat_params(unrolled)
  stacked = stack_params(flat, "blocks")
  assert stacked["layers.attn.wq"].shape == (3, 32, 4, 8)
  back = unstack_params(stacked, "blocks")
  assert back.keys() == flat.keys()
  for name in flat:
    np.testing.assert_array_equal(back[name], flat[name])


def test_weight_decay_mask_skips_norms_of_scanned_stacks(models):
  _, scanned = models
  flat = flat_params(scanned)
  mask = decay_mask(flat, {k: v.ndim for k, v in flat.items()}, decay_embeddings=False)
  assert mask["layers.attn.wq"] and mask["layers.mlp.wo"]
  assert not mask["layers.attn_norm.scale"] and not mask["layers.attn.q_norm.scale"]
  unrolled_mask = decay_mask({"layers.0.scale": 0}, {"layers.0.scale": 1}, False)
  assert unrolled_mask == {"layers.0.scale": False}


def test_scanned_bf16_and_default_layout_unchanged(models):
  unrolled, scanned = models
  assert not unrolled.scan_layers and len(unrolled.blocks) == 3
  m = like(scanned, num_layers=3, scan_layers=True, dtype="bfloat16")
  logits = jax.jit(lambda m, t: m(t))(m, _packed_batch()[0])
  assert logits.dtype == jnp.bfloat16 and bool(jnp.isfinite(logits.astype(jnp.float32)).all())


def test_sharded_train_step_with_scanned_layers(repo_root, tmp_path):
  if jax.device_count() < 8:
    pytest.skip("needs 8 (fake) devices")
  from unified_mm.config.loading import load_config
  from unified_mm.eval.stage_evaluators import make_task
  from unified_mm.train import train_and_evaluate

  config = load_config(str(repo_root / "experiments/lm.py:tiny"), [
      "mesh.data=1", "mesh.fsdp=4", "mesh.tensor=2", "model.num_layers=2",
      "model.scan_layers=True", "model.remat=full", "train.steps=2", "train.batch_size=8",
      "train.eval_every_steps=0", "train.log_every_steps=1", "ckpt.save_every_steps=100",
      "train.progress=False"])
  state = train_and_evaluate(config, tmp_path / "run", make_task(config))
  wq = state.params["layers.attn.wq"]
  assert wq.shape == (2, 128, 4, 32)
  assert wq.sharding.spec == PartitionSpec(None, "fsdp", "tensor", None)
  assert wq.addressable_shards[0].data.shape == (2, 128 // 4, 4 // 2, 32)
  assert int(state.step) == 2
  assert all(bool(jnp.isfinite(v).all()) for v in jax.tree.leaves(state.params))


def test_scan_layers_is_off_by_default():
  model = nnx.eval_shape(lambda: Transformer(**TINY, rngs=nnx.Rngs(0)))
  assert not model.scan_layers and hasattr(model, "blocks")
