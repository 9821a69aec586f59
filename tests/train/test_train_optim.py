"""Optimiser pieces: weight-decay mask, LR schedules, EMA, sharding of moments."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from unified_mm.config.base import optim_config
from unified_mm.train.optim import decay_mask, ema_update, is_embedding, make_optimizer, make_schedule


def test_decay_mask_skips_norms_biases_and_embeddings_by_default():
  ndims = {"embed.embedding": 2, "layers.0.attn.q.kernel": 3, "layers.0.attn.q.bias": 1,
           "layers.0.norm.scale": 1, "head.kernel": 2, "pos_embed": 2}
  mask = decay_mask(ndims, ndims, decay_embeddings=False)
  assert mask == {"embed.embedding": False, "layers.0.attn.q.kernel": True,
                  "layers.0.attn.q.bias": False, "layers.0.norm.scale": False,
                  "head.kernel": True, "pos_embed": False}
  mask = decay_mask(ndims, ndims, decay_embeddings=True)
  assert mask["embed.embedding"] and mask["pos_embed"] and not mask["layers.0.norm.scale"]


def test_is_embedding_is_by_name_part_not_substring():
  assert is_embedding("tok_embed.embedding") and is_embedding("embedder.table")
  assert not is_embedding("layers.0.embed_proj.kernel")
  assert not is_embedding("unembedding_head.kernel")


@pytest.mark.parametrize("decay", ["cosine", "linear", "constant"])
def test_schedule_warms_up_then_decays(decay):
  optim = optim_config(lr=1.0, warmup_steps=10, decay=decay, min_lr_ratio=0.1)
  s = make_schedule(optim, total_steps=110)
  lrs = np.array([float(s(i)) for i in range(111)])
  assert 0 < lrs[0] < lrs[5] < lrs[10]  # warmup starts above 0 and ramps
  np.testing.assert_allclose(lrs[10], 1.0, rtol=1e-6)
  expected_end = {"cosine": 0.1, "linear": 0.1, "constant": 1.0}[decay]
  np.testing.assert_allclose(lrs[110], expected_end, rtol=1e-5)
  assert np.all(np.diff(lrs[10:]) <= 1e-7)


def test_adamw_does_not_decay_masked_params():
  optim = optim_config(lr=0.1, warmup_steps=0, decay="constant", weight_decay=0.5, clip_norm=0.0)
  params = {"w.kernel": jnp.ones((2, 2)), "n.scale": jnp.ones((2,))}
  tx, _ = make_optimizer(optim, 10, params)
  zero = jax.tree.map(jnp.zeros_like, params)
  updates, _ = tx.update(zero, tx.init(params), params)
  assert np.all(np.asarray(updates["w.kernel"]) < 0)        # decayed towards 0
  np.testing.assert_array_equal(np.asarray(updates["n.scale"]), 0)  # not decayed


def test_ema_update():
  out = ema_update({"a": jnp.zeros(3)}, {"a": jnp.ones(3)}, 0.9)
  np.testing.assert_allclose(np.asarray(out["a"]), 0.1, rtol=1e-6)


def test_bad_decay_name_is_a_config_error():
  from unified_mm.config.loading import ConfigError
  with pytest.raises(ConfigError, match="optim.decay='cosin'"):
    make_schedule(ml_collections.ConfigDict(optim_config(decay="cosin")), 100)
