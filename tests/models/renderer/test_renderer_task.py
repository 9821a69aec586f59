"""The renderer stage through the generic trainer: sharded on 8 fake devices
with its own mesh, equal to a 1-device run; a loader round-trip."""

import json

import jax
import numpy as np

from unified_mm.cli.commands.train import train_stage
from unified_mm.config.loading import load_config
from unified_mm.models.renderer.loader import load_renderer
from unified_mm.train.state import split_params

REPO = __import__("pathlib").Path(__file__).resolve().parents[3]


def tiny_config(**mesh):
  c = load_config(str(REPO / "experiments/shapes.py:renderer"))
  # The stand-in tokenizer: pooled pixels (3 channels) and 64 pooled-colour codes.
  c.data.image_tokenizer_dir = ""
  c.model.update(latent_channels=3, visual_codes=64, visual_grid=8, visual_levels=(4, 4, 4),
                 plan_channels=3, embed_dim=32, depth=1, num_heads=2, context_depth=1)
  c.train.update(steps=3, batch_size=8, log_every_steps=1, eval_every_steps=0, progress=False)
  c.optim.update(warmup_steps=1, ema_decay=0.9)
  c.ckpt.update(save_every_steps=0, async_save=False)
  c.mesh.update(dict(dict(data=1, fsdp=1, tensor=1), **mesh))
  return c


def losses(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return np.array([r["train/loss"] for r in rows if "train/loss" in r])


def test_renderer_trains_sharded_with_its_own_mesh(tmp_path):
  devices = jax.devices()
  assert len(devices) == 8
  sharded = train_stage(tiny_config(data=2, fsdp=2, tensor=2), tmp_path / "sharded")
  specs = {k: v.sharding.spec for k, v in sharded.params.items()}
  # FSDP shards `embed` and tensor parallelism shards heads/mlp of the real params.
  assert any("fsdp" in str(s) for s in specs.values())
  assert any("tensor" in str(s) for s in specs.values())
  assert sharded.ema is not None
  single = train_stage(tiny_config(data=1), tmp_path / "single", devices=devices[:1])
  a, b = losses(tmp_path / "sharded"), losses(tmp_path / "single")
  assert len(a) == 3 and np.all(np.isfinite(a))
  np.testing.assert_allclose(a, b, rtol=1e-4)
  # The loader rebuilds the model from the workdir, with the EMA params.
  model, config = load_renderer(tmp_path / "sharded")
  assert config.model.embed_dim == 32
  _, params = split_params(model)
  assert set(params) == set(sharded.ema)
  for name in params:
    np.testing.assert_array_equal(np.asarray(params[name]), np.asarray(sharded.ema[name]))
  assert not np.allclose(np.asarray(sharded.ema["dit.proj_out.kernel"]), 0.0)  # trained
