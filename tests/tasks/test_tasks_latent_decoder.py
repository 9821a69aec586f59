"""The latent_decoder stage: a tokenizer's latent decoder fine-tuned on a frozen
renderer's samples, sharded on 8 devices. Only the latent decoder moves, the
pool is the renderer's own samples of the configured scenes, sampled once and
reused from the workdir, and the stream over it resumes by step."""

import json

import jax
import numpy as np
import pytest

from stage_factories import SHAPES, quick, tiny_renderer, tiny_tokenizer, tiny_tokenizer_model
from unified_mm.cli.commands.train import train_stage
from unified_mm.config.loading import ConfigError, load_config
from unified_mm.models.image_tokenizer.loader import LATENT_STATS_FILE, load_tokenizer
from unified_mm.models.renderer.loader import load_renderer
from unified_mm.models.renderer.rendering import render_latents
from unified_mm.tasks.latent_decoder import POOL_FILE, LatentDecoderTask, RenderedLatentPool
from unified_mm.tasks.renderer import RendererTask, scene_batch
from unified_mm.tasks.tokenizer import render_scenes
from unified_mm.train.state import split_params

POOL, STEPS = 20, 3


def decoder_config(root, **overrides):
  c = tiny_tokenizer_model(quick(load_config(SHAPES + ":latent_decoder"), STEPS))
  c.mesh.data = -1  # sharded over all 8 devices
  c.data.update(renderer_dir=str(root / "renderer"), pool_size=POOL)
  c.eval.update(num_scenes=8)
  c.train.eval_every_steps = STEPS
  c.ckpt.init_from = str(root / "tokenizer_base")
  c.update_from_flattened_dict(overrides)
  return c


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  """A tiny tokenizer, a tiny renderer trained on it, then the decoder stage on 8 devices."""
  root = tmp_path_factory.mktemp("root")
  one = jax.devices()[:1]
  train_stage(tiny_tokenizer(), root / "tokenizer_base", devices=one)
  train_stage(tiny_renderer(root / "tokenizer_base"), root / "renderer", devices=one)
  state = train_stage(decoder_config(root), root / "tokenizer")
  assert len(state.params["latent_decoder.conv_out.kernel"].sharding.device_set) == 8
  return root


def _params(workdir):
  model, stats = load_tokenizer(workdir, devices=jax.devices()[:1])
  return {k: np.asarray(v) for k, v in split_params(model)[1].items()}, stats


def test_only_the_latent_decoder_moves(root):
  before, stats_before = _params(root / "tokenizer_base")
  after, stats_after = _params(root / "tokenizer")
  assert set(before) == set(after)
  moved = {k for k in before if not np.array_equal(before[k], after[k])}
  assert moved and all(k.startswith("latent_decoder.") for k in moved), sorted(moved)
  assert any(k.startswith("encoder.") for k in before)  # the frozen parts exist and held
  # The renderer's latent scale is the source tokenizer's.
  np.testing.assert_array_equal(stats_after.mean, stats_before.mean)
  np.testing.assert_array_equal(stats_after.std, stats_before.std)
  assert json.loads((root / "tokenizer" / LATENT_STATS_FILE).read_text())["source"] == str(
      root / "tokenizer_base")


def test_evaluator_scores_the_renderer_path(root):
  rows = [json.loads(line) for line in (root / "tokenizer/metrics.jsonl").read_text().splitlines()]
  evals = [r for r in rows if "eval/rendered/palette_share" in r]
  assert [r["step"] for r in evals] == [STEPS]
  for key in ("roundtrip", "palette_share", "preview_roundtrip", "preview_palette_share"):
    assert 0.0 <= evals[0][f"eval/rendered/{key}"] <= 1.0
  assert evals[0]["eval/rendered/psnr"] > 0
  assert list((root / "tokenizer/eval").glob("renderer_grid_*.png"))


def test_pool_holds_the_renderers_samples_of_the_configured_scenes(root):
  with np.load(root / "tokenizer" / POOL_FILE) as f:
    latents, images = f["latent"], f["image"]
  config = decoder_config(root)
  d = config.data
  model, ren_config = load_renderer(root / "renderer")
  # The pool draws the renderer's scenes, laid out as the renderer's world lays them.
  _, expected_images = render_scenes(d.seed, range(POOL), 64, d.min_objects, d.max_objects,
                                     ren_config.data.get("cell_align", 0))
  np.testing.assert_array_equal(images, expected_images)
  # Sampled again here, outside the task: same scenes, context, key and sampler.
  ren_config.data.image_tokenizer_dir = str(root / "tokenizer_base")
  task = RendererTask(ren_config)
  _, _, batch = scene_batch(task, seed=d.seed, indices=range(POOL), min_objects=d.min_objects,
                            max_objects=d.max_objects, description_prob=d.description_prob)
  z = np.asarray(render_latents(model, jax.random.key(d.seed), **ren_config.sample,
                                **task.context_inputs(batch)))
  z = z * np.asarray(task.frontend.std) + np.asarray(task.frontend.mean)
  np.testing.assert_allclose(latents, z, rtol=1e-4, atol=1e-4)


def test_pool_is_reused_from_the_workdir_only_when_it_matches(root, tmp_path):
  workdir = tmp_path / "dec"
  task = LatentDecoderTask(decoder_config(root))
  task.bind_workdir(workdir)
  latents, images = task._pool()
  # Mark the cached copy: a second task must read the file, not sample again.
  with np.load(workdir / POOL_FILE) as f:
    key = str(f["key"])
  np.savez(workdir / POOL_FILE, key=key, latent=np.zeros_like(latents), image=images)
  again = LatentDecoderTask(decoder_config(root))
  again.bind_workdir(workdir)
  assert not again._pool()[0].any()
  other = LatentDecoderTask(decoder_config(root, **{"data.pool_size": 10}))
  other.bind_workdir(workdir)
  resampled = other._pool()[0]
  assert resampled.shape[0] == 10 and resampled.any()


def test_pool_stream_resumes_by_step_and_covers_each_epoch():
  latents = np.arange(12, dtype=np.float32).reshape(12, 1, 1, 1)
  images = np.zeros((12, 2, 2, 3), np.uint8)
  straight = RenderedLatentPool(latents, images, 3, 0, 1, 4)
  batches = [next(straight)["latent"].ravel() for _ in range(6)]
  assert sorted(np.concatenate(batches[:3])) == list(range(12))  # epoch 0: each once
  assert sorted(np.concatenate(batches[3:])) == list(range(12))  # epoch 1: each once
  assert not np.array_equal(np.concatenate(batches[:3]), np.concatenate(batches[3:]))
  resumed = RenderedLatentPool(latents, images, 3, 0, 1, 4)
  resumed.set_state(straight.get_state() | {"step": 4})
  np.testing.assert_array_equal(next(resumed)["latent"].ravel(), batches[4])
  # Two processes split each step's global rows, never overlapping.
  hosts = [RenderedLatentPool(latents, images, 3, p, 2, 2) for p in range(2)]
  rows = np.concatenate([next(h)["latent"].ravel() for h in hosts])
  np.testing.assert_array_equal(rows, batches[0])


@pytest.mark.parametrize("key, value, named", [
    ("data.renderer_dir", "", "data.renderer_dir"),
    ("ckpt.init_from", "", "ckpt.init_from"),
    ("optim.weight_decay", 0.1, "optim.weight_decay"),
])
def test_bad_config_is_refused_naming_the_key(key, value, named):
  config = load_config(SHAPES + ":latent_decoder")
  config.update_from_flattened_dict({key: value})
  with pytest.raises(ConfigError, match=named):
    LatentDecoderTask(config)
