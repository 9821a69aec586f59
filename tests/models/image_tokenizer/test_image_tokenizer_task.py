"""The tokenizer task's data (seeded, sharded, resumable) and its evaluator."""

import json

import numpy as np
import pytest
from flax import nnx
from ml_collections import ConfigDict
from PIL import Image

from unified_mm.eval.image_metrics import psnr_uint8
from unified_mm.eval.tokenizer_eval import TokenizerEvaluator, code_usage
from unified_mm.models.image_tokenizer import TokenizerAutoencoder
from unified_mm.tasks.tokenizer import ShapesImageIterator, edge_weights, saturated_error

DATA = ConfigDict(dict(seed=7, resolution=32, min_objects=1, max_objects=3))


def test_iterator_is_seeded_resumable_and_sharded():
  it = ShapesImageIterator(DATA, 0, 1, 4)
  first, second = next(it), next(it)
  assert first["image"].shape == (4, 32, 32, 3) and first["image"].dtype == np.uint8
  assert not np.array_equal(first["image"], second["image"])
  resumed = ShapesImageIterator(DATA, 0, 1, 4)
  resumed.set_state(json.loads(json.dumps(ShapesImageIterator(DATA, 0, 1, 4).get_state())))
  np.testing.assert_array_equal(next(resumed)["image"], first["image"])
  resumed.set_state({"step": 1})
  np.testing.assert_array_equal(next(resumed)["image"], second["image"])
  # Two processes with 2 rows each see exactly the rows of one process with 4.
  halves = [next(ShapesImageIterator(DATA, p, 2, 2))["image"] for p in (0, 1)]
  np.testing.assert_array_equal(np.concatenate(halves), first["image"])


def test_psnr_and_code_usage_values():
  a = np.zeros((2, 4, 4, 3), np.uint8)
  b = a.copy()
  b[1] += 1  # MSE 1 -> 20 log10(255) dB
  np.testing.assert_allclose(psnr_uint8(b, a), [100.0, 20 * np.log10(255.0)], rtol=1e-9)
  usage, perplexity = code_usage(np.array([0, 0, 1, 2]), 8)
  assert usage == 3 / 8
  np.testing.assert_allclose(perplexity, np.exp(-(0.5 * np.log(0.5) + 0.5 * np.log(0.25))))


@pytest.fixture(scope="module")
def evaluator(tmp_path_factory):
  return TokenizerEvaluator(seed=11, num_scenes=12, resolution=64, max_objects=4, batch_size=6,
                            grid_images=3, out_dir=tmp_path_factory.mktemp("tok_eval"))


def test_analyzer_round_trip_is_perfect_on_the_originals(evaluator):
  assert evaluator.roundtrip(evaluator.images) == 1.0
  assert evaluator.roundtrip(np.full_like(evaluator.images, 128)) == 0.0  # all background


def test_evaluator_metrics_and_files(evaluator):
  with nnx.use_eager_sharding(False):
    model = TokenizerAutoencoder(channels=(8, 16), latent_stage=0, code_stage=1,
                                 latent_channels=4, latent_decoder_channels=(8,),
                                 preview_decoder_channels=(16, 8), decoder_res_blocks=0,
                                 norm_groups=4, rngs=nnx.Rngs(0))
  metrics = dict(evaluator.run(model))
  assert set(metrics) == {"latent_psnr", "code_psnr", "code_usage", "code_perplexity",
                          "latent_roundtrip", "code_roundtrip", "z_std", "latent_palette_share",
                          "code_palette_share"}
  assert 0 <= metrics["latent_palette_share"] < 1 and 0 <= metrics["code_palette_share"] < 1
  assert 0 < metrics["latent_psnr"] < 30 and 0 < metrics["code_psnr"] < 30  # untrained
  assert 0 < metrics["code_usage"] <= 12 * 16 * 16 / 1000
  assert 1 <= metrics["code_perplexity"] <= 1000
  grid = np.asarray(Image.open(evaluator.out_dir / "eval" / "grid_0000.png"))
  assert grid.shape == (3 * 66, 3 * 66, 3)
  np.testing.assert_array_equal(grid[:64, :64], evaluator.images[0])  # row 0 = originals
  stats = json.loads((evaluator.out_dir / "latent_stats.json").read_text())
  assert len(stats["mean"]) == len(stats["std"]) == 4


def test_edge_weights_mark_both_sides_of_an_edge_only():
  target = -np.ones((1, 6, 6, 3), np.float32)
  target[0, :, 3:] = 1.0  # a vertical edge between columns 2 and 3
  w = np.asarray(edge_weights(target, 4.0))[0, ..., 0]
  np.testing.assert_array_equal(w[:, [2, 3]], 5.0)
  np.testing.assert_array_equal(w[:, [0, 1, 4, 5]], 1.0)


def test_overshooting_a_saturated_target_is_free():
  target = np.array([1.0, 1.0, -1.0, -1.0, 0.0, 0.0], np.float32)
  recon = np.array([1.5, 0.5, -1.5, -0.5, 0.5, -0.5], np.float32)
  np.testing.assert_allclose(saturated_error(recon, target), [0, -0.5, 0, 0.5, 0.5, -0.5])


def test_tip_weight_marks_one_pixel_protrusions():
  target = -np.ones((1, 5, 5, 3), np.float32)
  target[0, 2, 1:4] = 1.0  # a 3-px bar: its two end pixels differ from 3 neighbours
  w = np.asarray(edge_weights(target, 4.0, 20.0))[0, ..., 0]
  assert w[2, 1] == w[2, 3] == 25.0
  assert w[2, 2] == 5.0  # the middle differs from 2 neighbours: an edge, not a tip
  assert w[0, 0] == 1.0


def test_semantic_weight_asks_for_its_head_and_the_shapes_world():
  from unified_mm import tasks
  from unified_mm.config.loading import ConfigError, load_config
  with pytest.raises(ConfigError, match="model.semantic_classes=9"):
    tasks.make_task(load_config("experiments/shapes.py:tokenizer", ["loss.semantic_weight=1.0"]))
  with pytest.raises(ConfigError, match="data.source"):
    tasks.make_task(load_config("experiments/shapes.py:tokenizer", [
        "loss.semantic_weight=1.0", "model.semantic_classes=9", "data.source=tfds"]))
  task = tasks.make_task(load_config("experiments/shapes.py:tokenizer", [
      "loss.semantic_weight=1.0", "model.semantic_classes=9", "data.resolution=32"]))
  batch = next(task.make_data(0, 1, 2))
  assert set(batch) == set(task.batch_axes()) == {"image", "cell_kind"}
  assert batch["cell_kind"].shape == (2, 4, 4) and batch["cell_kind"].max() > 0
  assert set(tasks.make_task(load_config("experiments/shapes.py:tokenizer")).batch_axes()) == {
      "image"}


def test_train_crop_is_a_window_of_the_scene_on_the_code_cells():
  from unified_mm import tasks
  from unified_mm.config.loading import ConfigError, load_config
  semantic = ["loss.semantic_weight=1.0", "model.semantic_classes=9"]
  full = next(tasks.make_task(load_config("experiments/shapes.py:tokenizer",
                                          [*semantic, "data.train_crop=0"])).make_data(0, 1, 8))
  it = tasks.make_task(load_config("experiments/shapes.py:tokenizer",
                                   [*semantic, "data.train_crop=32"])).make_data(0, 1, 8)
  crops = next(it)
  assert crops["image"].shape == (8, 32, 32, 3) and crops["cell_kind"].shape == (8, 4, 4)
  offsets = set()
  for image, kinds, whole, whole_kinds in zip(crops["image"], crops["cell_kind"],
                                              full["image"], full["cell_kind"]):
    # Each crop is the full scene's pixels (and cell kinds) at a cell-aligned offset.
    found = [(y, x) for y in range(0, 33, 8) for x in range(0, 33, 8)
             if np.array_equal(whole[y:y + 32, x:x + 32], image)
             and np.array_equal(whole_kinds[y // 8:y // 8 + 4, x // 8:x // 8 + 4], kinds)]
    assert found
    offsets.add(found[0])
  assert len(offsets) > 1  # not one fixed window
  with pytest.raises(ConfigError, match="data.train_crop=20"):
    tasks.make_task(load_config("experiments/shapes.py:tokenizer", ["data.train_crop=20"]))
  photos = load_config("experiments/shapes.py:tokenizer")
  photos.unlock()  # the shapes preset has no source keys (experiments/real.py has them)
  photos.data.update(source="tfds", path="unused")
  with pytest.raises(ConfigError, match="data.train_crop=32 crops the shapes world"):
    tasks.make_task(photos)
