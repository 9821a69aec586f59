"""The patch critic and the adversarial term's gradient routing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from unified_mm.config.loading import ConfigError
from unified_mm.models.image_tokenizer.autoencoder import TokenizerAutoencoder
from unified_mm.tasks.tokenizer import TokenizerTask, reconstruction_loss

WEIGHTS = dict(l1_weight=1.0, mse_weight=1.0, code_weight=1.0, latent_reg_weight=1e-4)


def _model(critic_channels=(8, 16)):
  with nnx.use_eager_sharding(False):
    return TokenizerAutoencoder(channels=(8, 16), latent_stage=0, code_stage=1,
                                latent_channels=4, latent_decoder_channels=(8,),
                                preview_decoder_channels=(16, 8), decoder_res_blocks=0,
                                norm_groups=4, critic_channels=critic_channels,
                                rngs=nnx.Rngs(0))


def _grads(model, images, **weights):
  graphdef, params, rest = nnx.split(model, nnx.Param, ...)

  def loss(p):
    return reconstruction_loss(nnx.merge(graphdef, p, rest), images, **weights)[0]
  return nnx.to_flat_state(jax.grad(loss)(params))


@pytest.fixture(scope="module")
def images():
  return jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), np.uint8))


def _norm(flat, prefix):
  return sum(float(jnp.abs(v.get_value()).sum()) for k, v in flat if k[0] == prefix)


def test_critic_judges_patches():
  model = _model()
  logits = model.critic(jnp.zeros((3, 16, 16, 3)))
  assert logits.shape == (3, 4, 4) and logits.dtype == jnp.float32


def test_each_part_follows_only_its_own_objective(images):
  model = _model()
  plain = _grads(model, images, **WEIGHTS)
  adversarial = _grads(model, images, adversarial_weight=0.5, **WEIGHTS)
  # The critic learns (only) from its hinge loss; without the term it gets nothing.
  assert _norm(plain, "critic") == 0 and _norm(adversarial, "critic") > 0
  # The latent decoder also gets the generator's push; the preview decoder and
  # encoder's code path are untouched by the critic, which reads latent recons only.
  diff = {k: float(jnp.abs(a.get_value() - b.get_value()).sum())
          for (k, a), (_, b) in zip(adversarial, plain) if k[0] != "critic"}
  assert sum(v for k, v in diff.items() if k[0] == "latent_decoder") > 0
  assert sum(v for k, v in diff.items() if k[0] == "preview_decoder") == 0
  # The critic's hinge term alone does not reach the decoder: with a generator
  # weight of 0 the decoder's gradient equals the plain one (critic still trained).
  critic_only = _grads(model, images, adversarial_weight=1e-30, **WEIGHTS)
  for (k, a), (_, b) in zip(critic_only, plain):
    if k[0] == "latent_decoder":
      np.testing.assert_allclose(a.get_value(), b.get_value(), rtol=1e-5, atol=1e-9)


def test_adversarial_weight_without_a_critic_is_a_config_error():
  from experiments.shapes import tokenizer_config
  config = tokenizer_config()
  config.loss.adversarial_weight = 0.1
  with pytest.raises(ConfigError, match="model.critic_channels"):
    TokenizerTask(config)
