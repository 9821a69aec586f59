"""The code-cell diagnostic: background cells found from pixels, per-code losses
equal to a single unpadded row's, and the per-kind report."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from unified_mm.data.shapes.render import render
from unified_mm.data.shapes.scene import scene_for_index
from unified_mm.data.vocab import Vocab
from unified_mm.eval.code_cells import background_cells, cell_report, code_losses
from unified_mm.models.transformer import Transformer


def test_background_cells_are_the_cells_no_object_touches():
  scene = scene_for_index(0, 3, min_objects=2, max_objects=2)
  image = render(scene)[None]
  cells = background_cells(image, (8, 8), scene.background)[0]
  touched = np.zeros((8, 8), bool)
  for y, x in zip(*np.nonzero(np.any(image[0] != scene.background, axis=-1))):
    touched[y // 8, x // 8] = True
  np.testing.assert_array_equal(cells, ~touched)
  assert touched.any() and cells.any()


def test_code_losses_of_padded_rows_equal_each_row_alone():
  vocab = Vocab(40, 16, pad_to=16)
  model = jax.jit(lambda: Transformer(vocab_size=vocab.size, d_model=32, num_layers=1,
                                      num_heads=2, num_kv_heads=1, head_dim=16, mlp_dim=64,
                                      max_len=64, rngs=nnx.Rngs(0)))()
  rng = np.random.default_rng(0)
  texts = [rng.integers(0, 40, n) for n in (3, 7)]
  codes = rng.integers(0, 16, (2, 2, 2))
  nll, hit = code_losses(model, vocab, texts, codes)
  assert nll.shape == hit.shape == (2, 4)
  start, stop = vocab.image_range
  for i in range(2):
    row = np.array([vocab.bos, *texts[i], vocab.boi, *vocab.codes_to_ids(codes[i].ravel())])
    logp = jax.nn.log_softmax(model(jnp.asarray(row[None]))[0, :, start:stop], axis=-1)
    boi = len(texts[i]) + 1
    want = [-float(logp[boi + k, codes[i].ravel()[k]]) for k in range(4)]
    np.testing.assert_allclose(nll[i], want, rtol=1e-4, atol=1e-5)


def test_cell_report_splits_by_kind():
  codes = np.array([[0, 0, 1, 2]])
  background = np.array([[True, True, False, False]])
  nll = np.array([[0.1, 0.3, 2.0, 4.0]])
  hit = np.array([[True, True, False, True]])
  report = cell_report(nll, hit, codes, background)
  bg = report["background"]
  assert (bg["cells"], bg["distinct_codes"], bg["marginal_entropy"], bg["accuracy"]) == \
      (2, 1, 0.0, 1.0)
  assert np.isclose(bg["loss"], 0.2)
  obj = report["object"]
  assert obj["distinct_codes"] == 2 and np.isclose(obj["marginal_entropy"], np.log(2))
  assert np.isclose(obj["loss"], 3.0) and obj["accuracy"] == 0.5
