"""The tokenizer stage through the generic trainer: sharded == single device,
resume == straight run, and a trained workdir loads back for other stages."""

import json

import jax
import numpy as np
import pytest
from flax import nnx

from unified_mm.cli.commands.train import train_stage
from unified_mm.config.loading import load_config
from unified_mm.models.image_tokenizer.codes import TokenizerCodes
from unified_mm.models.image_tokenizer.loader import load_tokenizer
from unified_mm.tasks.tokenizer import render_scenes
from unified_mm.train.state import split_params

STEPS = 4


def tiny_config(repo_root, steps=STEPS, eval_every=0, **mesh):
  overrides = [
      f"train.steps={steps}", "train.batch_size=8", "train.log_every_steps=1",
      f"train.eval_every_steps={eval_every}", "train.progress=false",
      "ckpt.save_every_steps=2", "ckpt.async_save=false",
      # A constant rate makes "run to 2, then to 4" the same schedule as "run to 4".
      "optim.decay=constant", "optim.warmup_steps=0",
      # Adam turns a gradient that is ~0 up to reduction-order noise into a full
      # lr-sized step of either sign; a larger eps keeps such steps small.
      "optim.eps=1e-3",
      # Few layers: compiling the step is most of these tests' time.
      "data.resolution=32", "model.image_size=32", "model.channels=(8,16)",
      "model.latent_stage=0", "model.code_stage=1", "model.latent_channels=4",
      "model.latent_decoder_channels=(8,)", "model.preview_decoder_channels=(16,8)",
      "model.decoder_res_blocks=0", "model.norm_groups=4",
      "eval.num_scenes=16", "eval.batch_size=8", "eval.grid_images=4",
  ] + [f"mesh.{k}={v}" for k, v in mesh.items()]
  config = load_config(str(repo_root / "experiments/shapes.py") + ":tokenizer", overrides)
  if mesh:  # shard conv output channels over fsdp too, so params are really split
    config.unlock()
    config.rules = [[n, "fsdp" if n == "conv_out" else a] for n, a in config.rules]
    config.lock()
  return config


def losses(workdir):
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}


def host_params(state):
  return {k: np.asarray(jax.device_get(v)) for k, v in state.params.items()}


@pytest.fixture(scope="module")
def single_device_run(repo_root, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("tok_single")
  state = train_stage(tiny_config(repo_root, eval_every=STEPS), workdir,
                      devices=jax.devices()[:1])
  return workdir, host_params(state)


def test_sharded_data_fsdp_matches_single_device(repo_root, tmp_path, single_device_run):
  ref_dir, ref_params = single_device_run
  config = tiny_config(repo_root, data=4, fsdp=2)
  state = train_stage(config, tmp_path, devices=jax.devices()[:8])
  kernel = state.params["encoder.stem.kernel"]
  assert kernel.sharding.spec[-1] == "fsdp" and len(kernel.sharding.device_set) == 8
  np.testing.assert_allclose(list(losses(tmp_path).values()), list(losses(ref_dir).values()),
                             rtol=1e-5)
  got = host_params(state)
  assert got.keys() == ref_params.keys()
  for name in got:
    np.testing.assert_allclose(got[name], ref_params[name], atol=1e-4, err_msg=name)


def test_resume_continues_exactly(repo_root, tmp_path, single_device_run):
  ref_dir, ref_params = single_device_run
  train_stage(tiny_config(repo_root, steps=2), tmp_path, devices=jax.devices()[:1])
  state = train_stage(tiny_config(repo_root, steps=STEPS), tmp_path,
                      devices=jax.devices()[:1])
  assert int(state.step) == STEPS
  # Steps 3-4 ran after the restore: same params, same data (iterator state restored).
  np.testing.assert_allclose([losses(tmp_path)[s] for s in (3, 4)],
                             [losses(ref_dir)[s] for s in (3, 4)], rtol=1e-6)
  got = host_params(state)
  for name in got:
    np.testing.assert_allclose(got[name], ref_params[name], atol=1e-6, err_msg=name)


def test_trained_workdir_loads_for_other_stages(single_device_run):
  workdir, ref_params = single_device_run
  assert (workdir / "latent_stats.json").exists() and list((workdir / "eval").glob("grid_*.png"))
  model, stats = load_tokenizer(workdir)
  _, params = split_params(model)
  for name, value in params.items():
    np.testing.assert_array_equal(np.asarray(value), ref_params[name], err_msg=name)
  assert stats.mean.shape == stats.std.shape == (4,) and np.all(stats.std > 0)
  images = render_scenes(5, range(3), 32, 1, 3)[1]
  codes = TokenizerCodes(workdir)
  assert codes.codebook_size == 1000
  ids = codes(images)
  assert ids.shape == (3, 8, 8) and ids.dtype == np.int32
  np.testing.assert_array_equal(ids, np.asarray(nnx.jit(type(model).encode_codes)(model, images)))
  assert codes.to_image(ids).shape == (3, 32, 32, 3)
  # The renderer's plan latent is the latent of the preview *image* (uint8),
  # not of the preview decoder's raw, overshooting output.
  from unified_mm.models.renderer.latents import TrainedFrontend
  frontend = TrainedFrontend(workdir)
  preview = frontend.decode_codes(ids)
  assert preview.dtype == np.uint8
  np.testing.assert_allclose(frontend.plan_latent(ids), frontend.encode(preview)[0], atol=1e-5)
