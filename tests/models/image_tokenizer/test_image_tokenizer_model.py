"""The autoencoder's public API: shapes, dtypes, input conventions, logical axes, learning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from unified_mm.models.image_tokenizer import TokenizerAutoencoder
from unified_mm.models.image_tokenizer.layers import CONV_AXES, depth_to_space, space_to_depth
from unified_mm.parallel.sharding import LOGICAL_AXES
from unified_mm.tasks.tokenizer import render_scenes

# /2 latent and /4 codes on 32x32 images keep compile times small; the preset's
# /4 and /8 are the same code with one more stage.
TINY = dict(image_size=32, channels=(8, 16), latent_stage=0, code_stage=1, latent_channels=4,
            latent_decoder_channels=(8,), preview_decoder_channels=(16, 8), norm_groups=4)


def tiny_model(**overrides):
  with nnx.use_eager_sharding(False):
    return TokenizerAutoencoder(**(TINY | overrides), rngs=nnx.Rngs(0))


@pytest.fixture(scope="module")
def images():
  return render_scenes(3, range(4), 32, 1, 3)[1]  # [4, 32, 32, 3] uint8


def test_api_shapes_and_dtypes(images):
  model = tiny_model()
  z = model.encode_latent(images)  # eager: jit is exercised by the evaluator and train tests
  ids = model.encode_codes(images)
  assert z.shape == (4, 16, 16, 4) and z.dtype == jnp.float32
  assert model.latent_grid == (16, 16) and model.code_grid == (8, 8)
  assert ids.shape == (4, 8, 8) and ids.dtype == jnp.int32
  assert 0 <= int(ids.min()) and int(ids.max()) < model.codebook_size == 1000
  assert model.decode_latent(z).shape == (4, 32, 32, 3)
  assert model.decode_codes(ids).shape == (4, 32, 32, 3)


def test_uint8_and_signed_float_inputs_agree_and_paths_match_the_training_call(images):
  model = tiny_model()
  as_float = images.astype(np.float32) / 127.5 - 1.0
  np.testing.assert_allclose(model.encode_latent(images), model.encode_latent(as_float), atol=1e-6)
  out = model(images)
  np.testing.assert_array_equal(np.asarray(model.encode_codes(images)), np.asarray(out["ids"]))
  np.testing.assert_allclose(model.decode_latent(model.encode_latent(images)),
                             out["latent_recon"], atol=1e-5)
  np.testing.assert_allclose(model.decode_codes(out["ids"]), out["code_recon"], atol=1e-5)


def test_every_param_has_known_logical_axes():
  model = tiny_model()
  params = nnx.state(model, nnx.Param)
  leaves = jax.tree_util.tree_leaves_with_path(params, is_leaf=lambda x: isinstance(x, nnx.Variable))
  assert leaves
  for path, var in leaves:
    names = var.get_metadata().get("out_sharding")
    assert names is not None and len(names) == var[...].ndim, path
    assert set(names) <= LOGICAL_AXES, (path, names)
    if var[...].ndim == 4:
      assert tuple(names) == CONV_AXES, path


def test_space_depth_round_trip():
  x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
  y = space_to_depth(x, 2)
  assert y.shape == (2, 4, 4, 12)
  np.testing.assert_array_equal(depth_to_space(y, 2), x)
  np.testing.assert_array_equal(y[0, 1, 2, :3], x[0, 2, 4])  # top-left pixel of the patch


def test_small_loop_learns_both_paths(images):
  model = tiny_model()
  opt = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)
  target = images.astype(np.float32) / 127.5 - 1.0

  @nnx.jit
  def step(model, opt):
    def loss_fn(m):
      out = m(images)
      return (jnp.abs(out["latent_recon"] - target).mean()
              + jnp.abs(out["code_recon"] - target).mean())
    loss, grads = nnx.value_and_grad(loss_fn)(model)
    opt.update(model, grads)
    return loss

  first = float(step(model, opt))
  for _ in range(40):
    last = float(step(model, opt))
  assert last < 0.5 * first, (first, last)


def test_rejects_code_stage_finer_than_latent_stage():
  with pytest.raises(ValueError, match="latent_stage"):
    tiny_model(latent_stage=1, code_stage=0)


def test_latent_noise_reaches_only_the_latent_decoder():
  from unified_mm.tasks.tokenizer import reconstruction_loss
  model = tiny_model()
  images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  clean, noisy = model(images), model(images, 0.3, jax.random.key(1))
  np.testing.assert_array_equal(clean["z"], noisy["z"])
  np.testing.assert_array_equal(clean["code_recon"], noisy["code_recon"])
  assert np.abs(clean["latent_recon"] - noisy["latent_recon"]).max() > 1e-4
  weights = dict(l1_weight=1.0, mse_weight=1.0, code_weight=1.0, latent_reg_weight=1e-4)
  grads = nnx.grad(lambda m: reconstruction_loss(m, images, latent_noise=0.3,
                                                 rng=jax.random.key(1), **weights)[0])(model)
  assert all(np.isfinite(g).all() for g in jax.tree.leaves(grads))


def test_freeze_encoder_trains_the_decoders_only():
  from unified_mm.tasks.tokenizer import reconstruction_loss
  model = tiny_model()
  images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
  weights = dict(l1_weight=1.0, mse_weight=1.0, code_weight=1.0, latent_reg_weight=0.0)
  grads = nnx.grad(lambda m: reconstruction_loss(m, images, freeze_encoder=True, **weights)[0])(model)
  norms = {part: max(float(np.abs(g).max()) for g in jax.tree.leaves(getattr(grads, part)))
           for part in ("encoder", "latent_proj", "code_proj", "latent_decoder", "preview_decoder")}
  assert norms["encoder"] == norms["latent_proj"] == norms["code_proj"] == 0.0
  assert norms["latent_decoder"] > 0 and norms["preview_decoder"] > 0


def test_cell_codes_read_only_their_own_cell(images):
  model = tiny_model(cell_code_channels=(16,))
  assert model.encoder.stages.__len__() == 1  # the shared encoder keeps the latent's stage only
  p = model.code_downsample
  ids = np.asarray(model.encode_codes(images))
  changed = images.copy()
  changed[0, p:2 * p, 2 * p:3 * p] = 255 - changed[0, p:2 * p, 2 * p:3 * p]  # cell (1, 2)
  moved = np.asarray(model.encode_codes(changed)) != ids
  moved[0, 1, 2] = False  # the only cell allowed to change
  assert not moved.any()
  blank = np.zeros((1, 32, 32, 3), np.uint8)
  assert len(np.unique(np.asarray(model.encode_codes(blank)))) == 1  # equal cells, equal codes
  out = model(images)
  np.testing.assert_array_equal(ids, np.asarray(out["ids"]))
  assert out["z"].shape == (4, 16, 16, 4) and out["code_recon"].shape == images.shape


def test_semantic_head_learns_each_cells_kind_through_the_codes():
  """The head reads the quantized codes; its loss moves the encoder (straight
  through FSQ) and is what the labels say, not a constant."""
  from unified_mm.data.shapes.render import cell_kinds
  from unified_mm.tasks.tokenizer import reconstruction_loss
  scenes, images = render_scenes(5, range(4), 32, 1, 3)
  model = tiny_model(semantic_classes=9)
  labels = np.stack([cell_kinds(s, model.code_downsample) for s in scenes])
  weights = dict(l1_weight=1.0, mse_weight=1.0, code_weight=1.0, latent_reg_weight=0.0)
  loss_fn = lambda m, y: reconstruction_loss(m, images, semantic_weight=1.0, cell_kind=y, **weights)
  loss, metrics = loss_fn(model, labels)
  plain, _ = reconstruction_loss(model, images, **weights)
  np.testing.assert_allclose(float(loss - plain), float(metrics["semantic_nll"]), rtol=1e-5)
  other, _ = loss_fn(model, (labels + 1) % 9)
  assert float(other) != float(loss)
  grads = nnx.grad(lambda m: loss_fn(m, labels)[0] - reconstruction_loss(m, images, **weights)[0])(
      model)
  assert max(float(np.abs(g).max()) for g in jax.tree.leaves(grads.code_proj)) > 0
  assert max(float(np.abs(g).max()) for g in jax.tree.leaves(grads.preview_decoder)) == 0
  assert "semantic_logits" not in tiny_model()(images)  # off unless asked
